"""The knowledge nodes: thin adapters over `partyflow.knowledge`.

Files are read from the home's input folder and written to its output folder only. Knowledge bases live in the
home (knowledge/NAME/kb.sqlite), the same ones `partyflow kb` manages.
"""

from __future__ import annotations

from typing import Any

from partyflow.tools import function_tool

from .common import (
    CATEGORY,
    CHUNKS,
    DOCUMENTS,
    EMBEDDINGS,
    JSON,
    KNOWLEDGE_BASE,
    MODES,
    TOOL,
    KBHandle,
    confined,
    current_home,
    library,
    model_manager,
    model_usage,
    open_kb,
    progress_bar,
)


def _documents(value: Any) -> list[Any]:
    knowledge = library()
    items = value if isinstance(value, list) else [value]
    return [knowledge.Document(path=d["path"], text=d["text"], content_hash=d["content_hash"], format=d["format"])
            for d in items if d]


class LoadDocuments:
    DESCRIPTION = ("Read a file or a folder (recursively) under the home's input folder: PDF, DOCX, PPTX, XLSX, "
                   "CSV, HTML, Markdown, text and JSON become Markdown-like text. Files that cannot be read are "
                   "listed in 'failures'; the rest load.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (DOCUMENTS, JSON)
    RETURN_NAMES = ("documents", "failures")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"path": ("STRING", {"default": "docs", "tooltip": "A file or folder inside input/."})}}

    def load(self, path):
        knowledge = library()
        target = confined(current_home().input, path)
        from partyflow.knowledge.loaders import LoadFailure, iter_files, load_file

        documents, failures = [], []
        try:
            found = list(iter_files(target))
        except knowledge.DocumentError as exc:
            raise ValueError(str(exc)) from None
        bar = progress_bar(len(found))
        for index, file in enumerate(found):
            try:
                doc = load_file(file)
                documents.append({"path": doc.path, "text": doc.text, "content_hash": doc.content_hash,
                                  "format": doc.format})
            except knowledge.DocumentError as exc:
                failures.append(LoadFailure(str(file), exc.message).__dict__)
            bar.update_absolute(index + 1)
        return (documents, failures)


class SplitText:
    DESCRIPTION = ("Split text or documents into token-sized chunks that follow headings, paragraphs and tables, "
                   "with overlap. Tokens are counted offline.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (CHUNKS, JSON)
    RETURN_NAMES = ("chunks", "texts")
    FUNCTION = "split"

    @classmethod
    def INPUT_TYPES(cls):
        return {"optional": {
            "text": ("STRING", {"default": "", "multiline": True}),
            "documents": (DOCUMENTS, {"tooltip": "From Load Documents; used instead of text when linked."}),
            "chunk_tokens": ("INT", {"default": 400, "min": 16, "max": 8192}),
            "overlap_tokens": ("INT", {"default": 50, "min": 0, "max": 4000}),
        }}

    def split(self, text="", documents=None, chunk_tokens=400, overlap_tokens=50):
        knowledge = library()
        sources = [(d["path"], d["text"]) for d in documents] if documents else [("text", text)]
        chunks = []
        try:
            for source, body in sources:
                for chunk in knowledge.split_text(body, chunk_tokens=chunk_tokens, overlap_tokens=overlap_tokens):
                    chunks.append({"source": source, "seq": chunk.seq, "heading": chunk.heading, "page": chunk.page,
                                   "tokens": chunk.tokens, "text": chunk.text})
        except ValueError as exc:
            raise ValueError(f"cannot split: {exc}") from None
        return (chunks, [c["text"] for c in chunks])


class Embed:
    DESCRIPTION = ("Embed chunks (or lines of text) with an embedder: hash (offline, instant), minilm (offline "
                   "model), transformers:PATH or provider:NAME[/MODEL].")
    CATEGORY = CATEGORY
    RETURN_TYPES = (EMBEDDINGS,)
    RETURN_NAMES = ("embeddings",)
    FUNCTION = "embed"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"embedder": ("STRING", {"default": "hash"})},
                "optional": {"chunks": (CHUNKS,), "text": ("STRING", {"default": "", "multiline": True,
                                                                       "tooltip": "One text per line."})}}

    def embed(self, embedder, chunks=None, text=""):
        knowledge = library()
        from partyflow.knowledge.embeddings import make_embedder

        texts = [c["text"] for c in chunks] if chunks else [line for line in text.splitlines() if line.strip()]
        if not texts:
            raise ValueError("nothing to embed: link chunks or enter text")
        try:
            model = make_embedder(embedder, current_home(), manager=model_manager(), **model_usage())
            return ([row.tolist() for row in model.embed(texts)],)
        except knowledge.KnowledgeError as exc:
            raise ValueError(str(exc)) from None


class KnowledgeBaseNode:
    DESCRIPTION = ("Open a knowledge base of the home, creating it with these settings if it does not exist. "
                   "Settings of an existing one are kept (its embedder cannot change).")
    CATEGORY = CATEGORY
    RETURN_TYPES = (KNOWLEDGE_BASE, JSON)
    RETURN_NAMES = ("knowledge_base", "info")
    FUNCTION = "open"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"name": ("STRING", {"default": "docs"})},
                "optional": {
                    "embedder": ("STRING", {"default": "hash", "tooltip": "Used when creating."}),
                    "graph": ("BOOLEAN", {"default": False, "tooltip": "Extract a knowledge graph (needs llm)."}),
                    "llm": ("STRING", {"default": "", "tooltip": "A provider of config.toml for the graph, reports "
                                                                 "and answers."}),
                    "chunk_tokens": ("INT", {"default": 400, "min": 16, "max": 8192}),
                    "overlap_tokens": ("INT", {"default": 50, "min": 0, "max": 4000}),
                }}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")  # its contents change outside the graph (ingests, the CLI)

    def open(self, name, embedder="hash", graph=False, llm="", chunk_tokens=400, overlap_tokens=50):
        knowledge = library()
        home = current_home()
        try:
            config = knowledge.KBConfig(embedder=embedder, graph=graph, llm=llm or None, chunk_tokens=chunk_tokens,
                                        overlap_tokens=overlap_tokens)
            kb = knowledge.KnowledgeBase.create(home, name, config, exist_ok=True, manager=model_manager(),
                                                **model_usage())
        except knowledge.KnowledgeError as exc:
            raise ValueError(str(exc)) from None
        with kb:
            info = kb.info()
        return (KBHandle(name, llm or None), info)


class Ingest:
    DESCRIPTION = ("Add documents (from Load Documents) or a folder under input/ to a knowledge base: unchanged "
                   "files are skipped, changed ones replaced, each atomically. Shows progress.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (KNOWLEDGE_BASE, JSON)
    RETURN_NAMES = ("knowledge_base", "report")
    FUNCTION = "ingest"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,)},
                "optional": {"documents": (DOCUMENTS,),
                             "folder": ("STRING", {"default": "", "tooltip": "A folder inside input/ (synced: files "
                                                                             "gone from it are removed)."}),
                             "force": ("BOOLEAN", {"default": False})}}

    def ingest(self, knowledge_base, documents=None, folder="", force=False):
        if not documents and not folder.strip():
            raise ValueError("link documents or name a folder inside input/")
        bar = progress_bar(1)

        def progress(stage, done, total, detail):
            bar.update_absolute(done, total)

        with open_kb(knowledge_base) as kb:
            if folder.strip():
                report = kb.ingest([confined(current_home().input, folder)], force=force, progress=progress)
            else:
                report = kb.add_documents(_documents(documents), progress=progress)
        return (knowledge_base, report.as_dict())


class Query:
    DESCRIPTION = ("Search a knowledge base: naive (vector), keyword (BM25), hybrid (both fused), local "
                   "(entities and their neighbourhood), global (community reports) or mix. Outputs the numbered "
                   "context for a Chat node, the result with citations, and an answer when asked.")
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING", JSON, "STRING")
    RETURN_NAMES = ("context", "result", "answer")
    FUNCTION = "query"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,),
                             "query": ("STRING", {"default": "", "multiline": True}),
                             "mode": (list(MODES), {"default": "hybrid"}),
                             "top_k": ("INT", {"default": 10, "min": 1, "max": 1000})},
                "optional": {"path_filter": ("STRING", {"default": "", "tooltip": "Only documents whose path or "
                                                                                  "file name matches this glob."}),
                             "answer": ("BOOLEAN", {"default": False, "tooltip": "Answer with the knowledge "
                                                                                 "base's LLM, citing [n]."})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def query(self, knowledge_base, query, mode, top_k, path_filter="", answer=False):
        with open_kb(knowledge_base) as kb:
            result = kb.search(query, mode=mode, top_k=top_k, path_glob=path_filter or None, answer=answer)
        return (result.context(), result.as_dict(), result.answer or "")


class ExtractGraph:
    DESCRIPTION = ("Extract entities and relations from text with the knowledge base's LLM (structured output, "
                   "cached by text), without storing them: for previews and custom pipelines.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("graph",)
    FUNCTION = "extract"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,),
                             "text": ("STRING", {"default": "", "multiline": True})}}

    def extract(self, knowledge_base, text):
        if not text.strip():
            raise ValueError("the text is empty")
        with open_kb(knowledge_base) as kb:
            extraction = kb.llm("graph extraction").extract_many([text], where="Extract Graph")[0]
        return (extraction.model_dump(),)


class ExportGraph:
    DESCRIPTION = "Write a knowledge base's graph (entities, relations) as JSON or CSV into the output folder."
    CATEGORY = CATEGORY
    RETURN_TYPES = ("STRING",)
    RETURN_NAMES = ("path",)
    FUNCTION = "export"
    OUTPUT_NODE = True

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,),
                             "filename": ("STRING", {"default": "graph.json", "tooltip": "Inside output/; a folder "
                                                                                        "for csv."}),
                             "format": (["json", "csv"], {"default": "json"})}}

    def export(self, knowledge_base, filename, format):
        target = confined(current_home().output, filename)
        with open_kb(knowledge_base) as kb:
            written = kb.export_graph(target, format)
        return {"ui": {"text": [str(p) for p in written]}, "result": (str(target),)}


class ImportGraph:
    DESCRIPTION = ("Load a knowledge graph (JSON, or CSV of entities/relations) from the input folder into a "
                   "knowledge base; importing the same file again replaces what it brought.")
    CATEGORY = CATEGORY
    RETURN_TYPES = (KNOWLEDGE_BASE, JSON)
    RETURN_NAMES = ("knowledge_base", "counts")
    FUNCTION = "load"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,),
                             "path": ("STRING", {"default": "graph.json", "tooltip": "Inside input/."})}}

    def load(self, knowledge_base, path):
        source = confined(current_home().input, path)
        with open_kb(knowledge_base) as kb:
            counts = kb.import_graph(source)
        return (knowledge_base, counts)


class GraphQuery:
    DESCRIPTION = ("Run a Cypher query on the knowledge base's graph database (FalkorDB or Neo4j, set as its "
                   "graph_store). Entities are (:Entity {key, name, type, description}), relations "
                   "[:RELATES {description, keywords, weight}].")
    CATEGORY = CATEGORY
    RETURN_TYPES = (JSON,)
    RETURN_NAMES = ("rows",)
    FUNCTION = "query"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,),
                             "cypher": ("STRING", {"default": "MATCH (e:Entity) RETURN e.name LIMIT 10",
                                                   "multiline": True})},
                "optional": {"parameters": (JSON, {"tooltip": "An object of $parameters."})}}

    @classmethod
    def IS_CHANGED(cls, **kwargs):
        return float("nan")

    def query(self, knowledge_base, cypher, parameters=None):
        if parameters is not None and not isinstance(parameters, dict):
            raise ValueError("parameters must be a JSON object")
        with open_kb(knowledge_base) as kb:
            return (kb.cypher(cypher, parameters),)


class KnowledgeSearchTool:
    DESCRIPTION = ("A tool an Agent calls to search a knowledge base; it gets numbered chunks with their sources "
                   "(and graph facts in graph modes) to cite.")
    CATEGORY = f"{CATEGORY}/tools"
    RETURN_TYPES = (TOOL,)
    RETURN_NAMES = ("tools",)
    FUNCTION = "make"

    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"knowledge_base": (KNOWLEDGE_BASE,),
                             "mode": (list(MODES), {"default": "hybrid"}),
                             "top_k": ("INT", {"default": 5, "min": 1, "max": 50})},
                "optional": {"name": ("STRING", {"default": "search_knowledge"}),
                             "description": ("STRING", {"default": "", "multiline": True}),
                             "tools": (TOOL, {"tooltip": "More tools to offer alongside this one."})}}

    def make(self, knowledge_base, mode, top_k, name="search_knowledge", description="", tools=None):
        handle = knowledge_base
        home = current_home()
        manager = model_manager()  # a local embedding model stays loaded between the agent's searches

        def search(query: str) -> dict[str, Any]:
            """Search the knowledge base for passages relevant to a question.

            Args:
                query: The question or keywords to search for.
            """
            knowledge = library()
            try:
                with knowledge.KnowledgeBase.open(home, handle.name, manager=manager, **model_usage()) as kb:
                    result = kb.search(query, mode=mode, top_k=top_k)
            except knowledge.KnowledgeError as exc:
                return {"error": str(exc)}
            return {"results": [{"n": c.n, "source": c.label(), "text": c.text} for c in result.chunks],
                    "facts": [f"{r['source']} -> {r['target']}: {r['description']}" for r in result.relations],
                    "note": "cite results as [n]"}

        tool = function_tool(search, name=name.strip() or "search_knowledge",
                             description=description.strip() or f"Search the {handle.name} knowledge base.")
        from partyflow.tools import Tool

        linked = tools if isinstance(tools, list) else [tools] if isinstance(tools, Tool) else []
        return ([*linked, tool],)


NODE_CLASS_MAPPINGS = {
    "KBLoadDocuments": LoadDocuments, "KBSplitText": SplitText, "KBEmbed": Embed,
    "KnowledgeBase": KnowledgeBaseNode, "KBIngest": Ingest, "KBQuery": Query, "KBExtractGraph": ExtractGraph,
    "KBExportGraph": ExportGraph, "KBImportGraph": ImportGraph, "KBGraphQuery": GraphQuery,
    "KnowledgeSearchTool": KnowledgeSearchTool,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "KBLoadDocuments": "Load Documents", "KBSplitText": "Split Text", "KBEmbed": "Embed Texts",
    "KnowledgeBase": "Knowledge Base", "KBIngest": "Ingest Into Knowledge Base", "KBQuery": "Query Knowledge Base",
    "KBExtractGraph": "Extract Graph", "KBExportGraph": "Export Graph", "KBImportGraph": "Import Graph",
    "KBGraphQuery": "Graph Query (Cypher)",
    "KnowledgeSearchTool": "Knowledge Search Tool",
}

