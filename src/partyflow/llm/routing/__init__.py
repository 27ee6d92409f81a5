"""Routers: one model name over several providers, with health, cooldowns, limits and failover (issue 18)."""
