"""Matching quality on a labelled set: nDCG@10 and recall@10, matcher against plain BM25.

A set is a listings file (JSONL, the sample format of ../shared/data) and a pairs file
(CSV ``request_id,offer_id,relevance``, relevance 2 strong, 1 partial). The hub is taken
to hold every non-private listing with all its fields. Metrics are over the requests that
have at least one pair, with every unexpired offer as a candidate; nDCG uses the
relevance as gain (2 or 1) with the usual log2 discount. Systems: ``lexical`` (the
matcher without a model), ``semantic:<model>`` (the hub's default: the matcher with the
model), optionally ``semantic:<model>-lexicon`` (the same without the concept lexicon, to
show whether the lexicon still adds) and the baseline ``bm25`` (bm25s over title in
every language + summary + keywords + need, with no codes, concepts or constraints).
Every system's top 10 of every live request is checked against the hard constraints (TRL
below the minimum, no common partnership, expired). ``combine`` pools several sets into
one row per system, averaged over all their requests.
"""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from node.matching.concepts import ConceptLexicon
from node.matching.matcher import Matcher
from node.matching.semantic import Encoder
from protocol.listing import normalize_record

K = 10
CANDIDATES = frozenset({"tech_offer", "expert"})
ENVELOPE = frozenset(
    {"id", "owner", "category", "version", "created", "updated", "rights", "visibility"}
)
SKIP = ENVELOPE | {"share_with", "expires"}


@dataclass(frozen=True)
class SystemResult:
    system: str
    ndcg: float
    recall: float
    violations: int
    per_request: dict[str, float] = field(default_factory=dict)
    recall_per_request: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class SetReport:
    name: str
    requests: int
    pairs: int
    offers: int
    results: tuple[SystemResult, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "set": self.name,
            "requests": self.requests,
            "pairs": self.pairs,
            "offers": self.offers,
            "results": [
                {
                    "system": r.system,
                    "ndcg@10": round(r.ndcg, 4),
                    "recall@10": round(r.recall, 4),
                    "violations": r.violations,
                }
                for r in self.results
            ],
        }


def load_records(path: Path) -> dict[str, dict[str, Any]]:
    """Records by id, dates as integer ms."""
    out: dict[str, dict[str, Any]] = {}
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            if line.strip():
                record = normalize_record(json.loads(line))
                out[str(record["id"])] = record
    return out


def load_pairs(path: Path) -> dict[str, dict[str, int]]:
    """request id -> {offer id: relevance}."""
    out: dict[str, dict[str, int]] = {}
    with path.open(encoding="utf-8", newline="") as handle:
        for row in csv.DictReader(handle):
            out.setdefault(row["request_id"].strip(), {})[row["offer_id"].strip()] = int(
                row["relevance"]
            )
    return out


def hub_view(record: Mapping[str, Any]) -> dict[str, Any]:
    """The ``listing`` member of a summary carrying every field of ``record``."""
    return {
        "id": record["id"],
        "category": record["category"],
        "version": record.get("version", 1),
        "updated": record.get("updated", 0),
        "expires": record["expires"],
        "fields": {k: v for k, v in record.items() if k not in SKIP},
        "rights": record.get("rights", {}),
    }


def ndcg_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = K) -> float:
    dcg = sum(relevant.get(doc, 0) / math.log2(i + 2) for i, doc in enumerate(ranked[:k]))
    ideal = sorted(relevant.values(), reverse=True)[:k]
    idcg = sum(rel / math.log2(i + 2) for i, rel in enumerate(ideal))
    return dcg / idcg if idcg else 0.0


def recall_at(ranked: Sequence[str], relevant: Mapping[str, int], k: int = K) -> float:
    hits = sum(1 for doc in ranked[:k] if relevant.get(doc, 0) > 0)
    positives = sum(1 for rel in relevant.values() if rel > 0)
    return hits / positives if positives else 0.0


def violates(request: Mapping[str, Any], offer: Mapping[str, Any], now_ms: int) -> bool:
    trl, trl_min = offer.get("trl"), request.get("trl_min")
    if isinstance(trl, int) and isinstance(trl_min, int) and trl < trl_min:
        return True
    wanted, offered = request.get("partnership"), offer.get("partnership")
    if wanted and offered and not set(wanted) & set(offered):
        return True
    return bool(request["expires"] <= now_ms or offer["expires"] <= now_ms)


def reference_now(records: Mapping[str, Mapping[str, Any]]) -> int:
    """The set's "today": its latest ``updated`` (nothing is updated after the freeze)."""
    return max(int(r.get("updated", 0)) for r in records.values())


def _score(
    name: str,
    rankings: Mapping[str, list[str]],
    pairs: Mapping[str, Mapping[str, int]],
    records: Mapping[str, Mapping[str, Any]],
    now_ms: int,
) -> SystemResult:
    per = {rid: ndcg_at(rankings.get(rid, []), rel) for rid, rel in pairs.items()}
    recall = {rid: recall_at(rankings.get(rid, []), rel) for rid, rel in pairs.items()}
    bad = sum(
        violates(records[rid], records[oid], now_ms)
        for rid, ranked in rankings.items()
        for oid in ranked[:K]
    )
    n = max(len(pairs), 1)
    return SystemResult(name, sum(per.values()) / n, sum(recall.values()) / n, bad, per, recall)


def combine(reports: Sequence[SetReport], name: str = "all") -> SetReport:
    """Several sets as one: each system's metrics averaged over all their requests."""
    systems: dict[str, list[SystemResult]] = {}
    for report in reports:
        for result in report.results:
            systems.setdefault(result.system, []).append(result)
    results = []
    for system, parts in systems.items():
        ndcg = {f"{i}:{k}": v for i, p in enumerate(parts) for k, v in p.per_request.items()}
        recall = {
            f"{i}:{k}": v for i, p in enumerate(parts) for k, v in p.recall_per_request.items()
        }
        n = max(len(ndcg), 1)
        results.append(
            SystemResult(
                system,
                sum(ndcg.values()) / n,
                sum(recall.values()) / n,
                sum(p.violations for p in parts),
                ndcg,
                recall,
            )
        )
    return SetReport(
        name=name,
        requests=sum(r.requests for r in reports),
        pairs=sum(r.pairs for r in reports),
        offers=max((r.offers for r in reports), default=0),
        results=tuple(results),
    )


def matcher_rankings(
    records: Mapping[str, Mapping[str, Any]],
    now_ms: int,
    encoder: Encoder | None = None,
    *,
    lexicon: bool = True,
) -> dict[str, list[str]]:
    """Offer ids ranked by the matcher for every live request (``lexicon=False``: with an
    empty concept lexicon)."""
    matcher = Matcher(now_ms, encoder=encoder, lexicon=None if lexicon else ConceptLexicon({}))
    matcher.upsert_many(
        (str(r["owner"]), hub_view(r)) for r in records.values() if r.get("visibility") != "private"
    )
    top = matcher.top_matches(K, kinds=("offer",))
    return {ref[1]: [m.candidate[1] for m in matches] for ref, matches in top.items()}


def bm25_rankings(records: Mapping[str, Mapping[str, Any]], now_ms: int) -> dict[str, list[str]]:
    """Offer ids ranked by plain BM25 for every live request."""
    from node.matching.bm25 import BM25Baseline

    live = [
        r for r in records.values() if r.get("visibility") != "private" and r["expires"] > now_ms
    ]
    offers = [r for r in live if r["category"] == "tech_offer"]
    requests = [r for r in live if r["category"] == "tech_request"]
    baseline = BM25Baseline([str(o["id"]) for o in offers], [_plain_text(o) for o in offers])
    return {str(q["id"]): baseline.rank(_plain_text(q), K) for q in requests}


def _plain_text(record: Mapping[str, Any]) -> str:
    title = record.get("title") or {}
    parts = list(title.values()) if isinstance(title, Mapping) else [str(title)]
    parts.append(str(record.get("summary", "")))
    parts.extend(str(k) for k in record.get("keywords") or [])
    if record.get("need"):
        parts.append(str(record["need"]))
    return "\n".join(parts)


def evaluate(
    listings_path: Path | str,
    pairs_path: Path | str,
    *,
    encoder: Encoder | None = None,
    base: Mapping[str, dict[str, Any]] | None = None,
    now_ms: int | None = None,
    name: str | None = None,
    ablate_lexicon: bool = False,
    drop_request_fields: tuple[str, ...] = (),
) -> SetReport:
    """Evaluate the matcher (lexical, and semantic when ``encoder`` is given, also without
    the concept lexicon when ``ablate_lexicon``) and BM25 on one set. ``base``: listings
    of another set that this one may reuse by id without repeating them: its offers and
    experts join the candidates, and the listings the pairs name are taken from it when
    this set lacks them. ``drop_request_fields``: fields taken out of every request first
    (e.g. ``sector``, to see how much a field carries)."""
    records = load_records(Path(listings_path))
    pairs = load_pairs(Path(pairs_path))
    if base:
        named = {i for r, o in pairs.items() for i in (r, *o)}
        reused = {
            k: v
            for k, v in base.items()
            if k not in records and (k in named or v["category"] in CANDIDATES)
        }
        records = {**reused, **records}
    missing = sorted({i for r, o in pairs.items() for i in (r, *o)} - set(records))
    if missing:
        raise ValueError(f"pairs name listings not in the set: {', '.join(missing[:5])}")
    if drop_request_fields:
        records = {
            k: {f: v for f, v in r.items() if f not in drop_request_fields}
            if r["category"] == "tech_request"
            else r
            for k, r in records.items()
        }
    now = reference_now(records) if now_ms is None else now_ms
    results = [_score("lexical", matcher_rankings(records, now), pairs, records, now)]
    if encoder is not None:
        label = f"semantic:{encoder.name}"
        ranked = matcher_rankings(records, now, encoder)
        results.append(_score(label, ranked, pairs, records, now))
        if ablate_lexicon:
            ranked = matcher_rankings(records, now, encoder, lexicon=False)
            results.append(_score(f"{label}-lexicon", ranked, pairs, records, now))
    results.append(_score("bm25", bm25_rankings(records, now), pairs, records, now))
    offers = sum(
        1 for r in records.values() if r["category"] == "tech_offer" and r["expires"] > now
    )
    return SetReport(
        name=name or Path(listings_path).stem,
        requests=len(pairs),
        pairs=sum(len(v) for v in pairs.values()),
        offers=offers,
        results=tuple(results),
    )
