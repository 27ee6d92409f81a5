// Show the text that Show Text / Preview Any as Text produced inside the node, as a read-only text box.
// The official frontend only previews text for its own PreviewAny node; packs show theirs through onExecuted.
import { app } from "../../scripts/app.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const DISPLAY_NODES = new Set(["DisplayText", "DisplayValue"]);
const WIDGET_NAME = "shown_text";

function showText(node, texts) {
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false; // not part of the saved workflow's widgets_values
    widget.options = { ...(widget.options ?? {}), serialize: false };
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.dataset.partyflowShown = "true";
    }
  }
  widget.value = texts.join("\n");
  if (widget.inputEl) widget.inputEl.value = widget.value;
  node.setDirtyCanvas?.(true, true);
}

app.registerExtension({
  name: "partyflow.DisplayText",
  async beforeRegisterNodeDef(nodeType, nodeData) {
    if (!DISPLAY_NODES.has(nodeData.name)) return;
    const onExecuted = nodeType.prototype.onExecuted;
    nodeType.prototype.onExecuted = function (message) {
      onExecuted?.apply(this, arguments);
      if (Array.isArray(message?.text)) showText(this, message.text.map(String));
    };
  },
});
