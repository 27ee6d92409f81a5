// Show what an agent is doing while it runs: each step (`partyflow.agent.step`) and each round-table turn
// (`partyflow.party.turn`) as a line in a read-only "activity" box on the node that sent it. The last lines only,
// so a long run never grows the node without bound; the box is cleared when a new run starts.
import { app } from "../../scripts/app.js";
import { api } from "../../scripts/api.js";
import { ComfyWidgets } from "../../scripts/widgets.js";

const WIDGET_NAME = "activity";
const MAX_LINES = 12;
const MAX_TEXT = 160;
const lines = new Map(); // node id -> recent lines

function short(text) {
  const flat = String(text ?? "").replace(/\s+/g, " ").trim();
  return flat.length > MAX_TEXT ? flat.slice(0, MAX_TEXT - 1) + "…" : flat;
}

function show(nodeId, line) {
  const node = nodeId == null ? null : app.graph?.getNodeById(nodeId);
  if (!node) return; // an expanded copy, or a node of another open workflow
  const recent = lines.get(node.id) ?? [];
  recent.push(line);
  recent.splice(0, Math.max(recent.length - MAX_LINES, 0));
  lines.set(node.id, recent);
  let widget = node.widgets?.find((w) => w.name === WIDGET_NAME);
  if (!widget) {
    widget = ComfyWidgets.STRING(node, WIDGET_NAME, ["STRING", { multiline: true }], app).widget;
    widget.serialize = false;
    widget.options = { ...(widget.options ?? {}), serialize: false };
    if (widget.inputEl) {
      widget.inputEl.readOnly = true;
      widget.inputEl.dataset.partyflowActivity = "true";
    }
  }
  widget.value = recent.join("\n");
  if (widget.inputEl) widget.inputEl.value = widget.value;
  node.setDirtyCanvas?.(true, true);
}

function describeStep(detail) {
  const step = detail?.step ?? {};
  const tools = (step.tool_calls ?? []).map((call) => call.name).join(", ");
  const what = tools ? `calls ${tools}` : short(step.text) || step.finish_reason || "…";
  return `${detail?.agent ?? "agent"} step ${(step.index ?? 0) + 1}: ${what}`;
}

app.registerExtension({
  name: "partyflow.AgentActivity",
  setup() {
    api.addEventListener("partyflow.agent.step", ({ detail }) => show(detail?.node, describeStep(detail)));
    api.addEventListener("partyflow.party.turn", ({ detail }) =>
      show(detail?.node, `${detail?.speaker ?? "?"}: ${short(detail?.text)}`));
    api.addEventListener("execution_start", () => {
      for (const id of lines.keys()) {
        const widget = app.graph?.getNodeById(id)?.widgets?.find((w) => w.name === WIDGET_NAME);
        if (widget) widget.value = "";
      }
      lines.clear();
    });
  },
});
