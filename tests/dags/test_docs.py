"""The docs (README.md, docs/**/*.md) name only things that exist; their wording is free.

Checked: relative links and their #anchors (GitHub's heading slugs), `make <target>`s, repository paths
written in backticks, `docker compose exec|run <service>`s, the README's table of make targets against
the Makefile's `##`-documented targets, and docs/performance.md against what `make docs` renders from
the committed bench/history.json. Each check is a function of the pages' text, so
test_checks_catch_broken_docs can feed it broken copies and prove it fails.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from streamflow_dev import performance_doc

ROOT = Path(__file__).resolve().parents[2]
MAKEFILE = ROOT / "Makefile"
COMPOSE_FILES = (ROOT / "docker-compose.yml", ROOT / "docker-compose.celery.yml")

FENCE = re.compile(r"^```.*?^```[^\n]*$", re.MULTILINE | re.DOTALL)
INLINE_CODE = re.compile(r"`([^`\n]+)`")
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
HEADING = re.compile(r"^#{1,6}\s+(.+?)\s*#*\s*$", re.MULTILINE)
MAKE_TARGET_LINE = re.compile(r"^([a-zA-Z][\w-]*)\s*:(?!=)", re.MULTILINE)
# A path of the repository as the docs write it: a top-level folder, then no spaces and no placeholders.
REPO_PATH = re.compile(r"^(?:dags|plugins|include|sql|data|tests|tools|bench|docker|docs|feature_repo|\.ci)(?:/[\w.-]*)*$")
PLACEHOLDER = re.compile(r"NNN|YYYY|[*<>{}…]")
COMPOSE_COMMAND = re.compile(
    r"docker\s+compose(?:\s+-f\s+\S+|\s+--profile\s+\S+)*\s+(?:exec|run\s+--rm)(?:\s+-\S+)*\s+([\w-]+)")
ENV_ASSIGNMENT = re.compile(r"^(?:[A-Z_][A-Z0-9_]*=\S*\s+)+")


def doc_pages() -> dict[Path, str]:
    """README.md and every page under docs/, by path relative to the repository root."""
    paths = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    return {path.relative_to(ROOT): path.read_text(encoding="utf-8") for path in paths}


def prose(text: str) -> str:
    """The text without fenced code blocks or inline code: a link written in code is not a link."""
    return INLINE_CODE.sub("", FENCE.sub("", text))


def github_slug(heading: str) -> str:
    """The anchor GitHub gives a heading: markup dropped, lower case, punctuation out, spaces to hyphens."""
    text = re.sub(r"!?\[([^\]]*)\]\([^)]*\)", r"\1", heading)  # a link keeps its text
    text = text.replace("`", "").replace("*", "").lower()
    text = re.sub(r"[^\w\- ]", "", text)  # \w keeps letters, digits and underscores, as GitHub does
    return text.replace(" ", "-")


def anchors(text: str) -> set[str]:
    """Every heading's slug; a repeated heading gets -1, -2, ... as on GitHub."""
    seen: dict[str, int] = {}
    found = set()
    for heading in HEADING.findall(FENCE.sub("", text)):
        slug = github_slug(heading)
        found.add(slug if slug not in seen else f"{slug}-{seen[slug]}")
        seen[slug] = seen.get(slug, 0) + 1
    return found


def broken_links(pages: dict[Path, str]) -> list[str]:
    problems = []
    for page, text in pages.items():
        for target in LINK.findall(prose(text)):
            if re.match(r"^[a-z][a-z0-9+.-]*:", target):  # http:, https:, mailto:: not ours to check
                continue
            path_part, _, anchor = target.partition("#")
            resolved = (ROOT / page).parent / path_part if path_part else ROOT / page
            if not resolved.exists():
                problems.append(f"{page}: link to {target}: no such file")
                continue
            if anchor:
                relative = resolved.resolve().relative_to(ROOT)
                target_text = pages.get(relative) or resolved.read_text(encoding="utf-8")
                if anchor not in anchors(target_text):
                    problems.append(f"{page}: link to {target}: no heading with that anchor in {relative}")
    return problems


def code_spans(text: str) -> list[str]:
    """Inline code spans and the lines of fenced code blocks (a `$ ` prompt dropped)."""
    lines = [line.removeprefix("$ ").strip() for block in FENCE.findall(text) for line in block.splitlines()[1:-1]]
    return INLINE_CODE.findall(FENCE.sub("", text)) + lines


def makefile_targets(makefile: str) -> set[str]:
    return set(MAKE_TARGET_LINE.findall(makefile))


def documented_targets(makefile: str) -> set[str]:
    """Targets whose rule follows a `##` comment: what `make help` lists."""
    return set(re.findall(r"^## .*\n(?:##.*\n)*([a-zA-Z][\w-]*)\s*:", makefile, re.MULTILINE))


def unknown_make_targets(pages: dict[Path, str], makefile: str) -> list[str]:
    targets = makefile_targets(makefile)
    problems = []
    for page, text in pages.items():
        for span in code_spans(text):
            command = ENV_ASSIGNMENT.sub("", span)
            for target in re.findall(r"(?:^|[;&|]\s*)make\s+([a-z][\w-]*)", command):
                if target not in targets:
                    problems.append(f"{page}: `make {target}`: no such target in the Makefile")
    return problems


def missing_paths(pages: dict[Path, str]) -> list[str]:
    problems = []
    for page, text in pages.items():
        for span in INLINE_CODE.findall(FENCE.sub("", text)):
            if REPO_PATH.match(span) and not PLACEHOLDER.search(span) and not (ROOT / span).exists():
                problems.append(f"{page}: `{span}`: no such path in the repository")
    return problems


def compose_services() -> set[str]:
    services: set[str] = set()
    for path in COMPOSE_FILES:
        services |= set(yaml.safe_load(path.read_text(encoding="utf-8"))["services"])
    return services


def unknown_compose_services(pages: dict[Path, str], services: set[str]) -> list[str]:
    return [f"{page}: `docker compose … {service}`: no compose file defines {service!r}"
            for page, text in pages.items()
            for service in COMPOSE_COMMAND.findall(text) if service not in services]


def readme_target_table_mismatch(readme: str, makefile: str) -> list[str]:
    """The README's make-target table lists exactly the targets the Makefile documents with `##`."""
    section = re.search(r"^## Make targets\n(.*?)(?=^## )", readme, re.MULTILINE | re.DOTALL)
    if not section:
        return ["README.md: no '## Make targets' section"]
    listed = set()
    for row in re.findall(r"^\|([^|\n]*)\|", section.group(1), re.MULTILINE):
        listed |= set(re.findall(r"`make ([a-z][\w-]*)", row))
    documented = documented_targets(makefile)
    return ([f"README.md: the table lacks `make {t}`" for t in sorted(documented - listed)]
            + [f"README.md: the table lists `make {t}`, which the Makefile does not document" for t in sorted(listed - documented)])


@pytest.fixture(scope="module")
def pages():
    return doc_pages()


def test_docs_exist(pages):
    assert len(pages) > 5, sorted(pages)  # README and docs/ were found: the checks below have text to check


def test_relative_links_resolve(pages):
    assert broken_links(pages) == []


def test_make_targets_named_in_the_docs_exist(pages):
    assert unknown_make_targets(pages, MAKEFILE.read_text(encoding="utf-8")) == []


def test_repository_paths_named_in_the_docs_exist(pages):
    assert missing_paths(pages) == []


def test_compose_commands_name_real_services(pages):
    assert unknown_compose_services(pages, compose_services()) == []


def test_readme_lists_every_documented_make_target(pages):
    assert readme_target_table_mismatch(pages[Path("README.md")], MAKEFILE.read_text(encoding="utf-8")) == []


@pytest.mark.skipif(shutil.which("make") is None, reason="no make")
def test_make_help_lists_the_documented_targets():
    """`make help` (which the README points to) prints every `##`-documented target, once."""
    printed = subprocess.run(["make", "--no-print-directory", "help"], cwd=ROOT, capture_output=True, text=True,
                             check=True, timeout=30).stdout
    listed = re.findall(r"^  make (\S+)", printed, re.MULTILINE)
    assert sorted(listed) == sorted(documented_targets(MAKEFILE.read_text(encoding="utf-8")))


def test_performance_page_is_generated_from_the_committed_bench_figures():
    committed = performance_doc.OUTPUT.read_text(encoding="utf-8")
    assert committed == performance_doc.rendered(), "docs/performance.md is stale or edited by hand: run `make docs`"


def _replace(page: str, old: str, new: str):
    def mutate(pages: dict[Path, str]) -> None:
        key = Path(page)
        assert old in pages[key], f"the mutation's text is gone from {page}: update the mutation"
        pages[key] = pages[key].replace(old, new, 1)
    return mutate


def _append(page: str, text: str):
    def mutate(pages: dict[Path, str]) -> None:
        pages[Path(page)] += text
    return mutate


#: Each check, fed a broken copy of the docs, must report it.
MUTATIONS = {
    "link to a missing page": (broken_links, _append("docs/index.md", "\n[gone](no-such-page.md)\n")),
    "link to a missing anchor": (broken_links, _append("README.md", "\n[gone](docs/operating.md#no-such-heading)\n")),
    "anchor of a renamed heading": (broken_links, _replace("docs/operating.md", "### Backfill\n", "### Backfills\n")),
    "link inside docs/decisions/ one level off": (
        broken_links, _append("docs/decisions/0001-merge-vs-on-conflict.md", "\n[ops](operating.md)\n")),
    "an unknown make target": (lambda p: unknown_make_targets(p, MAKEFILE.read_text(encoding="utf-8")),
                               _append("docs/testing.md", "\nRun `make tests` first.\n")),
    "an unknown make target in a code block": (lambda p: unknown_make_targets(p, MAKEFILE.read_text(encoding="utf-8")),
                                               _append("docs/testing.md", "\n```bash\nmake integration\n```\n")),
    "a path that does not exist": (missing_paths, _append("docs/validation.md", "\nSee `include/streamflow/nothing.py`.\n")),
    "a renamed SQL file": (missing_paths, _append("docs/validation.md", "\nSee `sql/009_metrics.sql`.\n")),
    "a compose service that does not exist": (lambda p: unknown_compose_services(p, compose_services()),
                                              _replace("docs/docker.md", "docker compose exec warehouse psql",
                                                       "docker compose exec postgres psql")),
}


@pytest.mark.parametrize("mutation", sorted(MUTATIONS))
def test_checks_catch_broken_docs(mutation, pages):
    check, mutate = MUTATIONS[mutation]
    broken = dict(pages)
    mutate(broken)
    # More problems than the real docs have (those are test_relative_links_resolve's and its siblings' to report).
    assert len(check(broken)) > len(check(pages))


def test_target_table_check_catches_a_missing_and_an_undocumented_target(pages):
    readme, makefile = pages[Path("README.md")], MAKEFILE.read_text(encoding="utf-8")
    without_psql = "\n".join(line for line in readme.splitlines() if not line.startswith("| `make psql`"))
    assert readme_target_table_mismatch(without_psql, makefile) == ["README.md: the table lacks `make psql`"]
    undocumented = makefile.replace("## psql on the warehouse.\n", "")
    assert readme_target_table_mismatch(readme, undocumented) == [
        "README.md: the table lists `make psql`, which the Makefile does not document"]


def test_performance_check_catches_a_hand_edited_figure():
    committed = performance_doc.OUTPUT.read_text(encoding="utf-8")
    history_json = performance_doc.HISTORY_JSON.read_text(encoding="utf-8")
    first_total = re.search(r'"total": ([0-9.]+)', history_json).group(1)
    edited = history_json.replace(f'"total": {first_total}', '"total": 99.0', 1)
    assert performance_doc.render(performance_doc.TEMPLATE.read_text(encoding="utf-8"), json.loads(edited)) != committed


@pytest.mark.parametrize(("heading", "slug"), [
    ("Tested for real: `make compose-test`", "tested-for-real-make-compose-test"),
    ("The training_set DAG", "the-training_set-dag"),
    ("A month's cost does not grow with history", "a-months-cost-does-not-grow-with-history"),
    ("Feature store: Feast over the snapshots", "feature-store-feast-over-the-snapshots"),
    ("0001. Publish later months with `MERGE`, not `INSERT … ON CONFLICT DO UPDATE`",
     "0001-publish-later-months-with-merge-not-insert--on-conflict-do-update"),
])
def test_github_slug(heading, slug):
    assert github_slug(heading) == slug
