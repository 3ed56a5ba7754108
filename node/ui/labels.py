"""The words the pages show for coded values of listings (message ids, translated by the
templates): one list for the console and the marketplace. A code without one is shown as
it is."""

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
OTHER_CHOICES: dict[str, str] = {
    "none": N_("None"),
    "secret_know_how": N_("Secret know-how"),
    "applied": N_("Applied for"),
    "granted": N_("Granted"),
    "conference": N_("Conference"),
    "matchmaking": N_("Matchmaking"),
    "training": N_("Training"),
    "exhibition": N_("Exhibition"),
    "joint_lab": N_("Joint lab"),
    "sole": N_("Sole"),
    "joint": N_("Joint"),
    "public": N_("Public"),
    "network": N_("Network"),
    "bilateral": N_("Bilateral"),
    "private": N_("Private"),
}
"""IPR status, event kinds, agreement ownership and visibility."""
CHOICES: dict[str, str] = {**SECTORS, **ORG_TYPES, **PARTNERSHIPS, **STAGES, **OTHER_CHOICES}
"""The words for every value a listing form offers as a choice (countries are named by
Babel, not here)."""
ALL: dict[str, str] = {**CATEGORIES, **CHOICES}


def label(code: object) -> str:
    """The message id shown for ``code`` (the code itself when it has none)."""
    text = str(code)
    return ALL.get(text, text)
