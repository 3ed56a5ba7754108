"""The words the marketplace shows for coded values (message ids, translated by the
templates); a code without one is shown as it is."""

from __future__ import annotations

from node.ui.i18n import N_

CATEGORIES: dict[str, str] = {
    "tech_offer": N_("Technology offer"),
    "tech_request": N_("Technology request"),
    "expert": N_("Expert"),
    "organization": N_("Organization"),
    "event": N_("Event"),
    "agreement": N_("Agreement"),
}
SECTORS: dict[str, str] = {
    "agrifood": N_("Agriculture and food"),
    "new_energy": N_("New energy"),
    "biomedicine": N_("Biomedicine"),
    "ict_digital": N_("ICT and digital"),
    "advanced_manufacturing": N_("Advanced manufacturing"),
    "environment": N_("Environment"),
    "marine": N_("Marine"),
    "construction_materials": N_("Construction materials"),
    "mining": N_("Mining"),
}
STAGES: dict[str, str] = {
    "concept": N_("Concept"),
    "under_development": N_("Under development"),
    "lab_tested": N_("Lab tested"),
    "demonstrated": N_("Demonstrated"),
    "on_market": N_("On the market"),
}
PARTNERSHIPS: dict[str, str] = {
    "licensing": N_("Licensing"),
    "joint_venture": N_("Joint venture"),
    "technical_cooperation": N_("Technical cooperation"),
    "commercial_with_tech_assistance": N_("Sale with technical assistance"),
    "rnd_cooperation": N_("R&D cooperation"),
    "investment": N_("Investment"),
}
ORG_TYPES: dict[str, str] = {
    "university": N_("University"),
    "research_institute": N_("Research institute"),
    "enterprise": N_("Enterprise"),
    "government": N_("Government"),
}
ALL: dict[str, str] = {**CATEGORIES, **SECTORS, **STAGES, **PARTNERSHIPS, **ORG_TYPES}


def label(code: object) -> str:
    """The message id shown for ``code`` (the code itself when it has none)."""
    text = str(code)
    return ALL.get(text, text)
