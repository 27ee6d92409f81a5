// Show a Chat node's reply while it is written (`partyflow.llm.stream`: text pieces) and, when it is done, what
// the call used (`partyflow.llm.usage`: tokens and cost), in a read-only "reply" box on the node that sent them.
// The box keeps the last characters only, so a long reply never grows the node without bound; it is cleared when
// a new run starts.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const WIDGET_NAME = "reply";
const MAX_CHARS = 4000;
const replies = new Map(); // node id -> { text, usage }

function widgetOf(node) {
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false;
    widget.options = { ...(widget.options ?? {}), serialize: false };
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.dataset.partyflowStream = "true";
    }
  }
  return widget;
}

function render(nodeId, change) {
  const node = nodeId == null ? null : app.graph?.getNodeById(nodeId);
  if (!node) return; // an expanded copy, or a node of another open workflow
  const state = replies.get(node.id) ?? { text: "", usage: "" };
  change(state);
  state.text = state.text.slice(-MAX_CHARS);
  replies.set(node.id, state);
  const widget = widgetOf(node);
  widget.value = state.usage ? `${state.text}\n\n— ${state.usage}` : state.text;
  if (widget.inputEl) widget.inputEl.value = widget.value;
  node.setDirtyCanvas?.(true, true);
}

function describeUsage(detail) {
  const tokens = `${detail?.prompt_tokens ?? 0} prompt + ${detail?.completion_tokens ?? 0} completion tokens`;
  const cost = typeof detail?.cost === "number" ? `, cost ${detail.cost.toPrecision(3)}` : "";
  return `${detail?.model ?? "model"}: ${tokens}${cost}`;
}

app.registerExtension({
  name: "partyflow.ChatStream",
  setup() {
    api.addEventListener("partyflow.llm.stream", ({ detail }) =>
      render(detail?.node, (state) => { state.text += String(detail?.text ?? ""); }));
    api.addEventListener("partyflow.llm.usage", ({ detail }) =>
      render(detail?.node, (state) => { state.usage = describeUsage(detail); }));
    api.addEventListener("execution_start", () => {
      for (const id of replies.keys()) {
        const widget = app.graph?.getNodeById(id)?.widgets?.find((w) => w.name === WIDGET_NAME);
        if (widget) widget.value = "";
      }
      replies.clear();
    });
  },
});
