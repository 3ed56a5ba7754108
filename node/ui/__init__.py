"""Pages for people: the center console (every node), the public marketplace and the hub
operator's console (the hub only). Server-rendered Jinja templates, gettext catalogs
(Babel), staff accounts with cookie sessions; no front-end build step."""
