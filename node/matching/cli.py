"""``cattc eval``: matching quality of the matcher against plain BM25 on labelled sets.

Registered by ``node.cli.main`` as ``eval_cmd``. Unlike the node commands it needs no data
directory: it reads a listings file and a pairs file (and more with ``--extra``), builds a
hub-side matcher from them in memory and prints one row per set and system, and with more
than one set an ``all`` row pooling their requests. The matcher is evaluated lexically
and with the hub's sentence-embedding model (``--semantic``, default: the hub's own).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from node.cli.output import emit, fail, json_option, table
from protocol.timeutil import date_to_ms

if TYPE_CHECKING:
    from node.matching.evaluate import SetReport

_FILE = click.Path(dir_okay=False, exists=True, path_type=Path)


def _render(reports: list[dict[str, Any]]) -> str:
    rows = [
        [
            rep["set"],
            res["system"],
            f"{res['ndcg@10']:.3f}",
            f"{res['recall@10']:.3f}",
            res["violations"],
            rep["requests"],
        ]
        for rep in reports
        for res in rep["results"]
    ]
    headers = ["set", "system", "nDCG@10", "recall@10", "violations", "requests"]
    return table(headers, rows)


@click.command("eval")
@click.argument("listings", type=_FILE)
@click.argument("pairs", type=_FILE)
@click.option(
    "--extra",
    nargs=2,
    multiple=True,
    type=_FILE,
    metavar="LISTINGS PAIRS",
    help="Another set to evaluate in the same run; it may reuse the first set's listings by id.",
)
@click.option(
    "--base",
    type=_FILE,
    default=None,
    metavar="LISTINGS",
    help="Listings every set may reuse by id (default: the first set's listings).",
)
@click.option(
    "--semantic",
    "model",
    default="default",
    show_default=True,
    metavar="MODEL",
    help="Sentence-embedding model for the semantic rows: e5, e5-static, use, minilm, "
    "'none', or 'default' (e5, or the model CATTC_SEMANTIC names).",
)
@click.option(
    "--ablate-lexicon",
    is_flag=True,
    help="Also run the semantic matcher without the concept lexicon.",
)
@click.option("--now", default=None, metavar="DATE", help="Judge expiry at this date (YYYY-MM-DD).")
@click.option(
    "--without",
    "drop",
    multiple=True,
    type=click.Choice(["sector", "ipc", "isic"]),
    help="Leave this field out of every request (repeatable): the matcher then infers "
    "the codes from the request's text.",
)
@json_option
def eval_cmd(
    listings: Path,
    pairs: Path,
    extra: tuple[tuple[Path, Path], ...],
    base: Path | None,
    model: str,
    ablate_lexicon: bool,
    now: str | None,
    drop: tuple[str, ...],
    as_json: bool,
) -> None:
    """Matching quality on LISTINGS (JSONL) with the ground truth PAIRS (CSV).

    Prints nDCG@10 and recall@10 over the requests that have pairs, for the matcher and a
    plain BM25 baseline, and the number of top-10 entries that break a hard constraint.
    """
    # numpy, scipy and bm25s load here, not when every other cattc command starts.
    from node.matching.evaluate import combine, evaluate, load_records
    from node.matching.semantic import (
        CachedEncoder,
        EncoderUnavailable,
        load_default,
        load_encoder,
    )

    encoder: CachedEncoder | None = None
    skipped = ""  # said once the sets are read: a bad file is one error line alone
    if model == "default":
        encoder, status = load_default()
        if encoder is None:
            skipped = f"semantic rows skipped: {status.reason}"
    elif model.lower() != "none":
        try:
            encoder = load_encoder(model)
        except EncoderUnavailable as exc:
            fail(f"{exc}; run with --semantic none for the lexical matcher only")
    now_ms: int | None = None
    if now:
        try:
            now_ms = date_to_ms(now)
        except ValueError:
            fail(f"--now {now!r} is not a date; use YYYY-MM-DD")
    reports: list[SetReport] = []
    options: dict[str, Any] = {
        "encoder": encoder,
        "now_ms": now_ms,
        "ablate_lexicon": ablate_lexicon,
        "drop_request_fields": tuple(drop) + (("sectors",) if "sector" in drop else ()),
    }
    try:
        reused = load_records(base or listings)
        first_base = reused if base is not None else None
        reports.append(evaluate(listings, pairs, base=first_base, **options))
        for extra_listings, extra_pairs in extra:
            reports.append(evaluate(extra_listings, extra_pairs, base=reused, **options))
    except (ValueError, KeyError) as exc:
        fail(f"cannot evaluate: {exc}; check the listings and pairs files")
    if len(reports) > 1:
        reports.append(combine(reports))
    if skipped:
        click.echo(skipped, err=True)
    emit(as_json, [r.to_json() for r in reports], _render)
