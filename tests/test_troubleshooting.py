"""docs/troubleshooting.md has one section for every code certops can show, and none for a code
it cannot: probe problems, host findings, report incidents, incident-only codes and the error
kinds of host actions. A new code cannot be added without its section."""

from __future__ import annotations

import re
from pathlib import Path

from bot.core.incidents import FLAPPING
from bot.probe.model import PROBLEM_CODES
from bot.reports import REPORT_PROBLEMS
from host_actions.diagnose import FINDING_CODES
from host_actions.errors import KINDS

PAGE = Path(__file__).resolve().parents[1] / "docs" / "troubleshooting.md"
# the page's group headings (## ...) and the codes each one must hold, in this order
GROUPS: dict[str, set[str]] = {
    "Probe problems": set(PROBLEM_CODES),
    "Host findings": set(FINDING_CODES),
    "Host reports": set(REPORT_PROBLEMS),
    "Incident-only codes": {FLAPPING},
    "Host action errors": set(KINDS),
}
PARTS = ("**Means:**", "**certops saw:**", "**Check:**", "**Do:**")
_HEADING = re.compile(r"^(#{1,6}) (.*)$", re.M)
_CODE_HEADING = re.compile(r"^`([a-z][a-z0-9_]*)`$")


def sections() -> list[tuple[str, str, str]]:
    """(group, code, text) for each ### heading, in page order."""
    text = PAGE.read_text(encoding="utf-8")
    found, group = [], ""
    headings = list(_HEADING.finditer(text))
    for i, heading in enumerate(headings):
        level, title = len(heading[1]), heading[2].strip()
        end = headings[i + 1].start() if i + 1 < len(headings) else len(text)
        if level == 2:
            group = next((g for g in GROUPS if title.startswith(g)), title)
        elif level == 3:
            found.append((group, title, text[heading.end() : end]))
    return found


def test_the_code_collections_do_not_overlap() -> None:
    """A heading is a code alone: the same code in two collections could not say which it is."""
    everything = [code for codes in GROUPS.values() for code in codes]
    assert len(everything) == len(set(everything))


def test_every_code_has_a_section_under_its_group_and_no_section_names_an_unknown_code() -> None:
    found = sections()
    headings = [title for _, title, _ in found]
    not_codes = [t for t in headings if not _CODE_HEADING.match(t)]
    assert not_codes == [], "every ### heading is one code in backticks, such as ### `connect_refused`"
    codes = [t.strip("`") for t in headings]
    assert len(codes) == len(set(codes)), "a code has two sections"
    known = {code for codes in GROUPS.values() for code in codes}
    assert sorted(set(codes) - known) == [], "sections for codes certops does not have"
    for group, wanted in GROUPS.items():
        here = {title.strip("`") for g, title, _ in found if g == group}
        assert sorted(wanted - here) == [], f"codes without a section under ## {group}"
        assert sorted(here - wanted) == [], f"codes under ## {group} that belong elsewhere"


def test_each_section_says_what_it_means_what_certops_saw_what_to_check_and_what_to_do() -> None:
    thin = []
    for _, title, text in sections():
        missing = [part for part in PARTS if part not in text]
        if missing:
            thin.append(f"{title}: no {', '.join(missing)}")
    assert thin == []


def test_the_page_finds_the_codes_of_the_real_collections() -> None:
    """So a rename in the code, not only an addition, shows up here."""
    assert "tls_handshake_reset" in PROBLEM_CODES
    assert "newest_cert_key_unusable" in FINDING_CODES
    assert set(REPORT_PROBLEMS) == {"self_heal_failed", "post_renew_failed", "self_heal_silent"}
    assert FLAPPING == "flapping"
    assert "auth_failed" in KINDS
    assert len(sections()) == sum(len(codes) for codes in GROUPS.values())
