"""What a page prints of a listing is text as written, less the Unicode controls that
would reorder it: a title with a right-to-left override cannot dress itself, or the
text after it, as something else."""

from __future__ import annotations

from markupsafe import Markup

from node.ui.templating import environment

OVERRIDE = "\u202e"  # RIGHT-TO-LEFT OVERRIDE
ISOLATE = "\u2067"  # RIGHT-TO-LEFT ISOLATE


def test_every_printed_value_loses_its_bidirectional_controls() -> None:
    template = environment().from_string("<h1>{{ title }}</h1><p>{{ note }}</p>{{ n }}")
    page = template.render(
        title=f"Solar dryer {OVERRIDE}exe.emag{ISOLATE} <b>",
        note=Markup(f"<em>{OVERRIDE}kept markup</em>"),
        n=3,
    )
    assert OVERRIDE not in page and ISOLATE not in page
    assert "<h1>Solar dryer exe.emag &lt;b&gt;</h1>" in page  # still escaped
    assert "<p><em>kept markup</em></p>3" in page  # safe markup stays markup


def test_the_scripts_of_the_federation_pass_unchanged() -> None:
    words = "Máy sấy năng lượng mặt trời เครื่องอบแห้ง ເຄື່ອງອົບ ម៉ាស៊ីន 太阳能干燥机 စက်"
    page = environment().from_string("{{ w }}").render(w=words)
    assert page == words
