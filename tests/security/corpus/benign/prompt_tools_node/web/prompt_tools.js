import { app } from "../../scripts/app.js";

app.registerExtension({
    name: "corpus.prompt_tools",
    async beforeRegisterNodeDef(nodeType, nodeData) {
        if (nodeData.name === "SafeMath") {
            nodeType.prototype.color = "#335";
        }
    },
});
