"""Agents: the tool-calling loop, agents as tools, round tables and intent routing. Knows nothing of nodes."""

from partyflow.agents.as_tool import agent_tool, delegation_tool
from partyflow.agents.limits import AgentLimits
from partyflow.agents.loop import Agent, StepCallback
from partyflow.agents.party import RoundTable, RoundTableResult, Turn
from partyflow.agents.record import AgentResult, Step, StopReason, ToolRun
from partyflow.agents.router import Category, Intent, classify, match_category, parse_categories

__all__ = [
    "Agent", "AgentLimits", "AgentResult", "Category", "Intent", "RoundTable", "RoundTableResult", "Step",
    "StepCallback", "StopReason", "ToolRun", "Turn", "agent_tool", "classify", "delegation_tool", "match_category",
    "parse_categories",
]
