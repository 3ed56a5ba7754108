"""The fields of the console's listing form, per category, and the words shown for
each choice. Labels and hints are message ids the template translates."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from node.ui.i18n import N_
from node.ui.labels import CATEGORIES, CHOICES
from protocol.countries import ISO_COUNTRIES

TITLE_LANGUAGES = ("en", "zh", "vi", "th")
SECTORS = (
    "agrifood",
    "new_energy",
    "biomedicine",
    "ict_digital",
    "advanced_manufacturing",
    "environment",
    "marine",
    "construction_materials",
    "mining",
)
ORG_TYPES = ("university", "research_institute", "enterprise", "government")
PARTNERSHIPS = (
    "licensing",
    "joint_venture",
    "technical_cooperation",
    "commercial_with_tech_assistance",
    "rnd_cooperation",
    "investment",
)
STAGES = ("concept", "under_development", "lab_tested", "demonstrated", "on_market")
IPR = ("none", "secret_know_how", "applied", "granted")
EVENT_KINDS = ("conference", "matchmaking", "training", "exhibition")
AGREEMENT_KINDS = ("licensing", "technical_cooperation", "joint_lab", "joint_venture")
VISIBILITIES = ("public", "network", "bilateral", "private")


@dataclass(frozen=True)
class FormField:
    """One input. ``name`` is the record's path (``organization.name``); ``kind`` is
    text, textarea, list (one value a line), parties, select, choices (checkboxes),
    int, date or bool."""

    name: str
    label: str
    kind: str = "text"
    required: bool = False
    choices: tuple[str, ...] = ()
    hint: str = ""

    @property
    def html_id(self) -> str:
        return "f-" + self.name.replace(".", "-")


@dataclass(frozen=True)
class Message:
    """A message id for the template to translate, with its ``%(name)s`` parameters."""

    msgid: str
    params: Mapping[str, Any] = field(default_factory=dict)


def _org() -> list[FormField]:
    return [
        FormField("organization.name", N_("Organization name"), required=True),
        FormField("organization.type", N_("Organization type"), "select", True, ORG_TYPES),
    ]


_SECTOR = FormField("sector", N_("Sector"), "select", True, SECTORS)
_SECTORS = FormField("sectors", N_("Sectors"), "choices", choices=SECTORS)
_PARTNERSHIP = FormField("partnership", N_("Partnership wanted"), "choices", True, PARTNERSHIPS)
_NAME = FormField("name", N_("Name"), required=True)
_LIST_HINT = N_("One per line.")

COMMON: tuple[FormField, ...] = (
    *(
        FormField(f"title.{code}", N_("Title in %(language)s"), required=code == "en")
        for code in TITLE_LANGUAGES
    ),
    FormField("summary", N_("Summary"), "textarea", True),
    FormField("keywords", N_("Keywords"), "list", hint=_LIST_HINT),
    FormField("ipc", N_("IPC codes"), "list", hint=N_("One per line, e.g. A01G or A01G 9/14.")),
    FormField("isic", N_("ISIC codes"), "list", hint=N_("One per line, e.g. C or 2821.")),
    FormField("country", N_("Country"), "select", True, tuple(sorted(ISO_COUNTRIES))),
    FormField("visibility", N_("Visibility"), "select", True, VISIBILITIES),
    FormField(
        "share_with",
        N_("Share with (nodes)"),
        "list",
        hint=N_("Only for bilateral visibility: node ids, one per line, e.g. th."),
    ),
    FormField("expires", N_("Expires"), "date", True),
)
CONTACT_AND_RIGHTS: tuple[FormField, ...] = (
    FormField("contact.person", N_("Contact person")),
    FormField("contact.email", N_("Contact email")),
    FormField("contact.phone", N_("Contact phone")),
    FormField("rights.ip_owner", N_("IP owners"), "list", True, hint=_LIST_HINT),
    FormField(
        "rights.attribution",
        N_("Attribution"),
        "list",
        True,
        hint=N_("Names to credit, one per line, or the single word: declined."),
    ),
    FormField(
        "rights.name_logo_consent", N_("The owner consents to showing its name and logo"), "bool"
    ),
)
BY_CATEGORY: dict[str, tuple[FormField, ...]] = {
    "tech_offer": (
        _SECTOR,
        FormField("trl", N_("Technology readiness level (1-9)"), "int", True),
        FormField("stage", N_("Stage"), "select", True, STAGES),
        FormField("ipr_status", N_("IP status"), "select", True, IPR),
        _PARTNERSHIP,
        FormField(
            "target_countries",
            N_("Target countries (nodes)"),
            "list",
            hint=N_("Node ids, one per line, e.g. vn."),
        ),
        *_org(),
    ),
    "tech_request": (
        _SECTOR,
        FormField("need", N_("What is needed"), "textarea", True),
        FormField("trl_min", N_("Lowest readiness level accepted (1-9)"), "int", True),
        _PARTNERSHIP,
        FormField("budget_range", N_("Budget range")),
        FormField("deadline", N_("Deadline"), "date"),
        *_org(),
    ),
    "expert": (
        _NAME,
        FormField("job_title", N_("Job title")),
        FormField("affiliation", N_("Affiliation")),
        FormField("fields", N_("Fields of expertise"), "list", hint=_LIST_HINT),
        FormField("languages", N_("Languages"), "list", hint=N_("Codes, one per line, e.g. en.")),
        _SECTORS,
    ),
    "organization": (
        _NAME,
        FormField("type", N_("Organization type"), "select", True, ORG_TYPES),
        _SECTORS,
        FormField("member_since", N_("Member since"), "date"),
        FormField("website", N_("Website")),
    ),
    "event": (
        _NAME,
        FormField("kind", N_("Kind of event"), "select", True, EVENT_KINDS),
        FormField("city", N_("City"), required=True),
        FormField("start", N_("Starts"), "date", True),
        FormField("end", N_("Ends"), "date", True),
        FormField("organizer", N_("Organizer (node id)"), required=True),
        *_org(),
        FormField("registration_open", N_("Registration is open"), "bool"),
        FormField("capacity", N_("Capacity"), "int"),
        _SECTORS,
    ),
    "agreement": (
        FormField(
            "parties",
            N_("Parties"),
            "parties",
            True,
            hint=N_("One per line: the name, or the name | its node id."),
        ),
        FormField("kind", N_("Kind of agreement"), "select", True, AGREEMENT_KINDS),
        FormField("signed", N_("Signed on"), "date", True),
        FormField("related_listings", N_("Related listings"), "list", hint=_LIST_HINT),
        FormField("ip_arrangement", N_("IP arrangement"), "select", True, ("sole", "joint")),
        FormField("value_usd", N_("Value (USD)"), "int"),
        _SECTOR,
    ),
}


def fields_for(category: str) -> tuple[FormField, ...]:
    """The form's fields for ``category``, in the order shown."""
    return (*COMMON, *BY_CATEGORY[category], *CONTACT_AND_RIGHTS)


CHOICE_LABELS = CHOICES
"""The words shown for each choice (node.ui.labels)."""

CATEGORY_LABELS = CATEGORIES
