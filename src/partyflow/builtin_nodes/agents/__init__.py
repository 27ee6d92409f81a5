"""partyflow's agents node pack: the Agent node, tool nodes, memory nodes, agent-as-tool, round table, intent routing.

Written only against ComfyUI's node interface and the `partyflow.agents`, `partyflow.tools`, `partyflow.memory` and
`partyflow.llm` libraries. Models come in on LLM_MODEL links from the LLM pack's loader (a provider name, no key).
"""

from . import agent_nodes, mcp_nodes, memory_nodes, party_nodes, tool_nodes

_MODULES = (agent_nodes, tool_nodes, memory_nodes, party_nodes, mcp_nodes)

NODE_CLASS_MAPPINGS = {name: cls for module in _MODULES for name, cls in module.NODE_CLASS_MAPPINGS.items()}
NODE_DISPLAY_NAME_MAPPINGS = {name: title for module in _MODULES
                              for name, title in module.NODE_DISPLAY_NAME_MAPPINGS.items()}

WEB_DIRECTORY = "./web"  # agent_activity.js shows agent steps and round-table turns on the node while it runs

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
