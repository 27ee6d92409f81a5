"""Knowledge bases: retrieval quality per mode, indexing cost, and retrieval latency at scale.

(a) Quality and cost. A generated corpus of reports with planted facts: single-hop ("What is the access code of
    Vault X?", one supporting sentence) and multi-hop ("Which office does the leader of Project P work at?": one
    sentence names the leader, another document places that person). Indexed with a graph through a scripted
    OpenAI-compatible server on loopback (tests/support/knowledge_server.py) that answers extraction prompts
    deterministically and counts calls and tokens. Reported: recall@10 of the supporting sentences per mode, LLM
    calls and tokens per chunk to index, indexing time (the scripted model answers at once, so this is our own
    time), and the LLM calls of re-indexing the unchanged corpus (goal: 0).
(b) Latency at scale. 10k chunks (and 100k with --large) bulk-written into a knowledge base's store (random
    unit vectors of 384 dimensions, Zipf-distributed words for BM25, a synthetic graph), then p50/p95 of
    `KnowledgeBase.search` per mode, query embedding included, no LLM; at 100k exact and with the IVF index
    (ann.py), whose recall@10 against exact search is shown (goal: p95 <= 50 ms at 100k).

Peers: with `--peer-python PY` (the Python of a virtual environment with lightrag-hku installed), LightRAG indexes
the same corpus through the same scripted server, with the same embedding model (the server answers /embeddings
with it), in a subprocess (bench/peers/lightrag_peer.py); its recall@10 per mode, LLM calls and tokens per chunk
and index time are shown beside ours. nano-graphrag cannot run offline (it calls tiktoken, which downloads its
tables on first use, with no way to pass another tokenizer).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from _support import Goal, report_goals, show_table

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # tests.support, when run as a script

from tests.support.knowledge_server import KnowledgeServer  # noqa: E402

from partyflow.config import Home  # noqa: E402
from partyflow.knowledge import MODES, Document, KBConfig, KnowledgeBase  # noqa: E402
from partyflow.knowledge.embeddings import make_embedder  # noqa: E402
from partyflow.knowledge.store import bump, set_meta, to_blob  # noqa: E402
from partyflow.store.sqlite import transaction  # noqa: E402

SYLLABLES = ["ka", "lo", "ve", "ri", "man", "dor", "sel", "tu", "qua", "bri", "zen", "fa", "gor", "lin", "ost",
             "pel", "ra", "ton", "vi", "xe"]
CITIES = ["Lisbon", "Oslo", "Tallinn", "Porto", "Ghent", "Turku", "Bergen", "Aarhus", "Utrecht", "Graz", "Brno",
          "Split", "Cork", "Malmo", "Basel", "Lyon"]
FILLER = ("the quarterly review covered routine maintenance of shared equipment and the scheduling of rooms. "
          "staff discussed onboarding material, badge renewals and the cafeteria menu for the next weeks. "
          "several teams asked for clearer guidance on expense reports and on booking travel in advance. "
          "the facilities group replaced lighting in two corridors and tested the fire alarms without issues. "
          "a short survey about remote work received many answers and will be summarised next month. "
          "printer supplies are ordered centrally and delivered every second tuesday to each floor. ").split(". ")


def name(rng: random.Random, parts: int = 2) -> str:
    return "".join(rng.choice(SYLLABLES) for _ in range(parts)).capitalize()


@dataclass
class Question:
    text: str
    kind: str
    supporting: list[str]  # sentences that must be retrieved


def make_corpus(folder: Path, documents: int, seed: int = 7) -> list[Question]:
    rng = random.Random(seed)
    folder.mkdir(parents=True, exist_ok=True)
    bodies: list[list[str]] = [[] for _ in range(documents)]
    questions: list[Question] = []
    used: set[str] = set()

    def unique(parts: int) -> str:
        while (candidate := name(rng, parts)) in used:
            pass
        used.add(candidate)
        return candidate

    for index in range(documents):
        vault = unique(3)
        code = f"{rng.choice('KLMNPQ')}{rng.choice('XYZRS')}-{rng.randrange(1000, 9999)}"
        fact = f"The access code of Vault {vault} is {code}."
        bodies[index].append(fact)
        questions.append(Question(f"What is the access code of Vault {vault}?", "single", [fact]))
        if index % 2 == 0 and documents > 1:
            project, person = unique(2), f"{unique(2)} {unique(2)}"
            city = rng.choice(CITIES)
            lead = f"Project {project} is led by {person}."
            place = f"{person} works at the {city} office."
            other = (index + documents // 2 + 1) % documents
            bodies[index].append(lead)
            bodies[other].append(place)
            questions.append(Question(f"Which office does the leader of Project {project} work at?", "multi",
                                      [lead, place]))
    for index, facts in enumerate(bodies):
        paragraphs = []
        for _ in range(rng.randint(4, 6)):
            sentences = rng.sample(FILLER, 3)
            paragraphs.append(". ".join(s.strip() for s in sentences if s.strip()) + ".")
        for fact in facts:
            paragraphs.insert(rng.randrange(len(paragraphs) + 1), fact)
        (folder / f"report_{index:04d}.md").write_text(f"# Report {index}\n\n" + "\n\n".join(paragraphs) + "\n",
                                                       encoding="utf-8")
    return questions


def recall(chunks: list[str], question: Question) -> float:
    text = "\n".join(" ".join(c.split()) for c in chunks)
    return sum(1 for s in question.supporting if s in text) / len(question.supporting)


def quality(args: argparse.Namespace, goals: list[Goal]) -> None:
    with tempfile.TemporaryDirectory(prefix="partyflow-kb-bench-") as tmp, KnowledgeServer() as server:
        home = Home(Path(tmp, "home")).ensure()
        home.config_file.write_text(f'[providers.scripted]\ntype = "openai_compat"\nbase_url = "{server.url}"\n'
                                    'model = "tiny-chat"\nmax_retries = 0\n', encoding="utf-8")
        questions = make_corpus(Path(tmp, "corpus"), args.documents)
        config = KBConfig(embedder=args.embedder, graph=True, llm="scripted", chunk_tokens=120, overlap_tokens=20,
                          concurrency=4)
        with KnowledgeBase.create(home, "bench", config) as kb:
            started = time.perf_counter()
            report = kb.ingest([Path(tmp, "corpus")])
            index_s = time.perf_counter() - started
            calls = sum(server.calls.values())
            tokens = sum(server.tokens.values())
            reindex = kb.ingest([Path(tmp, "corpus")], force=True)
            reindex_calls = sum(server.calls.values()) - calls
            for q in questions[:3]:  # warm-up: vector matrices, communities and their reports
                for mode in MODES:
                    kb.search(q.text, mode=mode, top_k=10)
            begun = time.perf_counter()
            kb.embedder.embed([q.text for q in questions])  # query vectors cached: the table times retrieval
            embed_ms = (time.perf_counter() - begun) * 1000 / len(questions)
            rows = []
            best_plain = 0.0
            results: dict[str, float] = {}
            for mode in MODES:
                by_kind: dict[str, list[float]] = {"single": [], "multi": []}
                times = []
                for q in questions:
                    begun = time.perf_counter()
                    result = kb.search(q.text, mode=mode, top_k=10)
                    times.append(time.perf_counter() - begun)
                    by_kind[q.kind].append(recall([c.text for c in result.chunks], q))
                overall = statistics.mean(by_kind["single"] + by_kind["multi"])
                results[mode] = overall
                if mode in ("naive", "keyword"):
                    best_plain = max(best_plain, overall)
                rows.append([mode, f"{statistics.mean(by_kind['single']):.3f}",
                             f"{statistics.mean(by_kind['multi']):.3f}", f"{overall:.3f}",
                             f"{statistics.median(times) * 1000:.1f}"])
            peer = lightrag(args, Path(tmp, "corpus"), questions, Path(tmp)) if args.peer_python else None
            peer_best = 0.0
            if peer is not None:
                for mode, results_of_mode in peer["modes"].items():
                    by_kind = {"single": [], "multi": []}
                    for row, q in zip(results_of_mode, questions, strict=True):
                        by_kind[q.kind].append(recall(row["chunks"], q))
                    overall = statistics.mean(by_kind["single"] + by_kind["multi"])
                    peer_best = max(peer_best, overall)
                    p50 = statistics.median(row["seconds"] for row in results_of_mode) * 1000
                    rows.append([f"LightRAG {mode}", f"{statistics.mean(by_kind['single']):.3f}",
                                 f"{statistics.mean(by_kind['multi']):.3f}", f"{overall:.3f}", f"{p50:.1f}*"])
            show_table(f"(a) recall@10, {len(questions)} questions over {report.chunks} chunks "
                       f"({args.documents} documents, embedder {args.embedder})"
                       + ("; * LightRAG's times include its LLM keyword call per query" if peer else ""),
                       ["mode", "single-hop", "multi-hop", "all", "p50 ms"], rows)
            if peer is not None:
                show_table("(a) indexing cost, LightRAG (defaults: one gleaning pass)", ["figure", "value"], [
                    ["chunks", str(peer["chunks"])],
                    ["LLM calls / chunk", f"{peer['calls'] / peer['chunks']:.2f}"],
                    ["LLM tokens / chunk (chars/4)", f"{peer['tokens'] / peer['chunks']:.0f}"],
                    ["index time (embeddings over loopback)", f"{peer['index_s']:.1f} s"],
                    ["LLM calls at query time (keywords)", str(peer["query_llm_calls"])],
                ])
                goals.append(Goal("LLM calls per chunk <= LightRAG's", calls / report.chunks
                                  <= peer["calls"] / peer["chunks"] + 1e-9,
                                  f"{calls / report.chunks:.2f} vs {peer['calls'] / peer['chunks']:.2f}"))
                goals.append(Goal("LLM tokens per chunk <= LightRAG's", tokens / report.chunks
                                  <= peer["tokens"] / peer["chunks"], f"{tokens / report.chunks:.0f} vs "
                                  f"{peer['tokens'] / peer['chunks']:.0f}"))
                goals.append(Goal("hybrid and mix recall >= LightRAG's best mode",
                                  min(results["hybrid"], results["mix"]) >= peer_best - 1e-9,
                                  f"hybrid {results['hybrid']:.3f}, mix {results['mix']:.3f}, LightRAG best "
                                  f"{peer_best:.3f}"))
            show_table("(a) indexing cost", ["figure", "value"], [
                ["chunks", str(report.chunks)],
                ["LLM calls / chunk", f"{calls / report.chunks:.2f}"],
                ["LLM tokens / chunk (chars/4)", f"{tokens / report.chunks:.0f}"],
                ["index time (scripted LLM answers at once)", f"{index_s:.1f} s"],
                ["re-index unchanged corpus (--force): LLM calls", str(reindex_calls)],
                ["re-index time", f"{reindex.seconds:.1f} s"],
                ["community reports written (lazily, at first global query)", str(server.calls["report"])],
                ["query embedding (not in the p50 column)", f"{embed_ms:.1f} ms"],
            ])
            goals.append(Goal("re-index of an unchanged corpus makes no LLM call", reindex_calls == 0,
                              f"{reindex_calls} calls"))
            goals.append(Goal("LLM calls per chunk to index <= 1 (one extraction, no gleaning)",
                              calls / report.chunks <= 1.0 + 1e-9, f"{calls / report.chunks:.2f}"))
            goals.append(Goal("hybrid and mix recall >= the best of naive and keyword",
                              min(results["hybrid"], results["mix"]) >= best_plain - 1e-9,
                              f"hybrid {results['hybrid']:.3f}, mix {results['mix']:.3f}, best plain "
                              f"{best_plain:.3f}"))


INDEX_KINDS = ("extract", "glean", "summary", "report", "other")


def lightrag(args: argparse.Namespace, corpus: Path, questions: list[Question], workdir: Path,
             ) -> dict[str, object] | None:
    """Run LightRAG on the corpus in its own environment; None (with the reason printed) if it cannot run."""
    model = make_embedder(args.embedder, Home(workdir))
    (workdir / "questions.json").write_text(json.dumps([q.text for q in questions]), encoding="utf-8")
    with KnowledgeServer(embed=model.embed) as server:
        script = Path(__file__).resolve().parent / "peers" / "lightrag_peer.py"
        done = subprocess.run([args.peer_python, str(script), str(corpus), str(workdir / "questions.json"),
                               server.url, str(workdir / "lightrag")], capture_output=True, text=True, timeout=3600)
        if done.returncode != 0:
            print(f"LightRAG failed (exit {done.returncode}):\n{done.stderr[-2000:]}")
            return None
        out = json.loads(done.stdout.strip().splitlines()[-1])
        chunks = server.calls["extract"]
        out["chunks"] = chunks
        out["calls"] = sum(server.calls[kind] for kind in INDEX_KINDS)
        out["tokens"] = sum(server.tokens[kind] for kind in INDEX_KINDS)
        out["query_llm_calls"] = server.calls["keywords"]
        return out


def bulk_store(kb: KnowledgeBase, chunks: int, rng: np.random.Generator) -> None:
    """Write `chunks` synthetic chunks (and a graph around them) straight into the store, in one transaction."""
    vocabulary = [f"w{i}" for i in range(5000)]
    weights = 1.0 / np.arange(1, len(vocabulary) + 1)
    weights /= weights.sum()
    per_doc = 10
    entities = chunks // 5
    conn = kb.conn
    with transaction(conn):
        set_meta(conn, "dimensions", "384")
        for doc in range(chunks // per_doc):
            doc_id = conn.execute("INSERT INTO documents (path, hash, format, size, chunks, ingested_at) "
                                  "VALUES (?, ?, 'md', 0, ?, 0)", (f"/bench/doc{doc}.md", str(doc), per_doc)).lastrowid
            words = rng.choice(len(vocabulary), size=(per_doc, 60), p=weights)
            vectors = rng.standard_normal((per_doc, 384)).astype(np.float32)
            vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
            for seq in range(per_doc):
                text = " ".join(vocabulary[w] for w in words[seq])
                chunk_id = conn.execute("INSERT INTO chunks (doc_id, seq, text, heading, page, tokens, hash, vector) "
                                        "VALUES (?, ?, ?, '', NULL, 60, '', ?)",
                                        (doc_id, seq, text, to_blob(vectors[seq]))).lastrowid
                conn.execute("INSERT INTO chunk_fts (rowid, body) VALUES (?, ?)", (chunk_id, text))
        ev = rng.standard_normal((entities, 384)).astype(np.float32)
        ev /= np.linalg.norm(ev, axis=1, keepdims=True)
        conn.executemany("INSERT INTO entities (id, key, name, type, description, vector) VALUES (?, ?, ?, 'concept', "
                         "'', ?)", [(i + 1, f"e{i}", f"E{i}", to_blob(ev[i])) for i in range(entities)])
        conn.executemany("INSERT INTO entity_mentions (entity_id, chunk_id, origin, type, description) "
                         "VALUES (?, ?, 'bench', 'concept', '')",
                         [(int(rng.integers(1, entities + 1)), c + 1) for c in range(chunks) for _ in range(3)])
        pairs = {(int(a), int(b)) for a, b in rng.integers(1, entities + 1, size=(entities * 2, 2)) if a != b}
        conn.executemany("INSERT INTO relations (source_id, target_id, description, keywords, weight) "
                         "VALUES (?, ?, '', '', 1.0)", sorted(pairs))
        conn.execute("INSERT INTO relation_mentions (relation_id, chunk_id, origin, description, keywords, weight) "
                     "SELECT id, (id % ?) + 1, 'bench', '', '', 1.0 FROM relations", (chunks,))
        bump(conn, "revision")
        bump(conn, "graph_revision")


def _percentiles(kb: KnowledgeBase, texts: list[str], mode: str) -> tuple[float, float]:
    kb.search(texts[0], mode=mode, top_k=10)  # warm-up: loads the vector matrices
    samples = []
    for text in texts:
        begun = time.perf_counter()
        kb.search(text, mode=mode, top_k=10)
        samples.append((time.perf_counter() - begun) * 1000)
    samples.sort()
    return samples[len(samples) // 2], samples[min(len(samples) - 1, int(len(samples) * 0.95))]


def latency(sizes: list[int], queries: int, goals: list[Goal]) -> None:
    rng = np.random.default_rng(3)
    rows = []
    for size in sizes:
        with tempfile.TemporaryDirectory(prefix="partyflow-kb-scale-") as tmp:
            home = Home(Path(tmp)).ensure()
            with KnowledgeBase.create(home, "scale", KBConfig(embedder="hash:384")) as kb:
                started = time.perf_counter()
                bulk_store(kb, size, rng)
                load_s = time.perf_counter() - started
                # a query: three content words (ranks 50-5000 of the Zipf vocabulary) and one common word
                texts = [" ".join([f"w{int(rng.integers(0, 50))}"] + [f"w{int(w)}" for w in rng.integers(50, 5000, 3)])
                         for _ in range(queries)]
                ivf = size >= kb.config.ann_threshold
                for mode in ("naive", "keyword", "hybrid", "local", "mix"):
                    p50, p95 = _percentiles(kb, texts, mode)
                    rows.append([f"{size:,}", mode + (" (exact)" if ivf and mode != "keyword" else ""),
                                 f"{p50:.1f}", f"{p95:.1f}", f"{load_s:.0f} s"])
                if not ivf:
                    continue
                exact = {t: [c.chunk_id for c in kb.search(t, mode="naive", top_k=10).chunks] for t in texts}
                begun = time.perf_counter()
                cells = kb.train_ann()
                train_s = time.perf_counter() - begun
                for mode in ("naive", "hybrid", "local", "mix"):
                    p50, p95 = _percentiles(kb, texts, mode)
                    rows.append([f"{size:,}", f"{mode} (ivf)", f"{p50:.1f}", f"{p95:.1f}",
                                 f"{cells} cells, {train_s:.0f} s"])
                    if size >= 100_000:
                        goals.append(Goal(f"p95 <= 50 ms at {size:,} chunks, {mode} (ivf)", p95 <= 50,
                                          f"{p95:.1f} ms"))
                overlap = statistics.mean(
                    len(set(exact[t]) & {c.chunk_id for c in kb.search(t, mode="naive", top_k=10).chunks}) / 10
                    for t in texts)
                rows.append([f"{size:,}", "ivf recall@10 vs exact", f"{overlap:.2f}", "",
                             "random vectors: a lower bound"])
                if size >= 100_000:
                    p50, p95 = _percentiles(kb, texts, "keyword")
                    goals.append(Goal(f"p95 <= 50 ms at {size:,} chunks, keyword", p95 <= 50, f"{p95:.1f} ms"))
    show_table(f"(b) retrieval latency without the LLM, {queries} queries, top 10 (ms)",
               ["chunks", "mode", "p50", "p95", "bulk load / index"], rows)


def stdlib_sentences(limit: int) -> list[str]:
    """Real prose for a recall check of the IVF index: sentences of the standard library's docstrings."""
    import ast
    import sysconfig

    sentences: list[str] = []
    for file in sorted(Path(sysconfig.get_paths()["stdlib"]).rglob("*.py")):
        try:
            tree = ast.parse(file.read_text(encoding="utf-8"))
        except (SyntaxError, UnicodeDecodeError):
            continue
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.ClassDef | ast.Module):
                doc = ast.get_docstring(node) or ""
                for sentence in " ".join(doc.split()).split(". "):
                    if 40 <= len(sentence) <= 300:
                        sentences.append(sentence)
        if len(set(sentences)) >= limit:
            break
    return list(dict.fromkeys(sentences))[:limit]


def ivf_recall(embedder: str, size: int, queries: int) -> None:
    """IVF recall@10 against exact search on real sentence embeddings."""
    texts = stdlib_sentences(size + queries)
    with tempfile.TemporaryDirectory(prefix="partyflow-kb-ivf-") as tmp:
        home = Home(Path(tmp)).ensure()
        documents = [Document(path=f"/stdlib/{i}.txt", text=t, content_hash=str(i), format="txt")
                     for i, t in enumerate(texts[:size])]
        with KnowledgeBase.create(home, "ivf", KBConfig(embedder=embedder, ann_threshold=0)) as kb:
            kb.add_documents(documents)
            asked = texts[size:size + queries]
            if not asked:
                raise RuntimeError(f"only {len(texts)} sentences found for {size} chunks and {queries} queries")
            exact = [{c.chunk_id for c in kb.search(q, mode="naive", top_k=10).chunks} for q in asked]
            cells = kb.train_ann()
            rows = []
            for probe in (0.05, 0.1, 0.2):
                kb._chunks.probe = probe
                found = [{c.chunk_id for c in kb.search(q, mode="naive", top_k=10).chunks} for q in asked]
                recall_at_10 = statistics.mean(len(a & b) / max(1, len(a)) for a, b in zip(exact, found, strict=True))
                rows.append([f"{probe:.2f}", f"{recall_at_10:.3f}"])
    show_table(f"(b) IVF recall@10 vs exact search, {len(documents):,} stdlib docstring sentences, {embedder}, "
               f"{cells} cells", ["probed fraction", "recall@10"], rows)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--documents", type=int, default=60, help="documents of the quality corpus")
    parser.add_argument("--embedder", default="minilm", help="embedder for the quality corpus (minilm, hash)")
    parser.add_argument("--large", action="store_true", help="also measure 100k chunks")
    parser.add_argument("--queries", type=int, default=100)
    parser.add_argument("--peer-python", help="Python of a venv with lightrag-hku, to run LightRAG beside us")
    parser.add_argument("--no-check", action="store_true")
    args = parser.parse_args()
    goals: list[Goal] = []
    quality(args, goals)
    latency([10_000, 100_000] if args.large else [10_000], args.queries, goals)
    if args.large:
        ivf_recall(args.embedder, 5_000, 100)
    return report_goals(goals, check=not args.no_check)


if __name__ == "__main__":
    raise SystemExit(main())
