"""Prompt utilities: templating, a safe arithmetic evaluator for numeric widgets, and wildcard expansion."""

from .nodes import PromptTemplate, SafeMath, Wildcards

NODE_CLASS_MAPPINGS = {"PromptTemplate": PromptTemplate, "SafeMath": SafeMath, "Wildcards": Wildcards}
WEB_DIRECTORY = "./web"
