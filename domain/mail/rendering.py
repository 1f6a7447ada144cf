"""Email bodies from Jinja2 templates: `templates/emails/<name>.txt` and `<name>.html`, one pair per event.

Every template gets `title`, `body`, `link` (made absolute against the public base URL), `app_name` and
`recipient_name`, plus whatever extras the producer put in the context. A text template may set the subject
with `{% set subject = ... %}`; otherwise the subject is the context's `subject` or `title`. A name without its
own pair falls back to the generic layout, so a new event type mails something sensible before it gets a design.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

from jinja2 import Environment, FileSystemLoader, Template, TemplateNotFound, TemplateSyntaxError

from core.settings import PROJECT_ROOT

TEMPLATE_DIR = PROJECT_ROOT / "templates" / "emails"
GENERIC = "generic"
_NAME = re.compile(r"^[a-z][a-z0-9_]{0,60}$")
_BLANK_RUNS = re.compile(r"\n{3,}")
_HEADER_UNSAFE = re.compile(r"[\r\n\t]+")


class TemplateError(Exception):
    """The template itself is broken (retrying will not help)."""


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str
    template: str  # the pair actually used (`generic` when the event has none of its own)


def absolute_link(link: object, base_url: str) -> str | None:
    """Links in mail must be absolute: `/entries/4` becomes `<base_url>/entries/4`."""
    if not link:
        return None
    value = str(link)
    if value.startswith(("http://", "https://", "mailto:")):
        return value
    return base_url.rstrip("/") + "/" + value.lstrip("/")


def has_own_pair(name: str, template_dir: Path = TEMPLATE_DIR) -> bool:
    """`name` is a template name with its own `.txt` and `.html` (not the generic fallback): for configuration that
    names a template, checked when it is loaded."""
    return bool(_NAME.match(name)) and all((template_dir / f"{name}.{kind}").is_file() for kind in ("txt", "html"))


class EmailRenderer:
    def __init__(self, *, base_url: str, app_name: str, template_dir: Path = TEMPLATE_DIR) -> None:
        self.base_url = base_url
        self.app_name = app_name
        loader = FileSystemLoader(str(template_dir))
        self._html = Environment(loader=loader, autoescape=True, trim_blocks=True, lstrip_blocks=True)
        # Plain text is not HTML: escaping would print &amp; into the text part.
        self._text = Environment(loader=loader, autoescape=False, trim_blocks=True, lstrip_blocks=True)  # noqa: S701

    def _pair(self, name: str) -> tuple[str, Template, Template]:
        if _NAME.match(name):
            try:
                return name, self._text.get_template(f"{name}.txt"), self._html.get_template(f"{name}.html")
            except TemplateNotFound:
                pass
        return GENERIC, self._text.get_template(f"{GENERIC}.txt"), self._html.get_template(f"{GENERIC}.html")

    def render(self, name: str, context: Mapping[str, object]) -> RenderedEmail:
        values: dict[str, object] = {"app_name": self.app_name, "title": "", "body": "", "recipient_name": None}
        values.update(context)
        values["link"] = absolute_link(values.get("link"), self.base_url)
        try:
            used, text_template, html_template = self._pair(name)
            text_module = text_template.make_module(values)
            html = html_template.render(values)
        except TemplateSyntaxError as exc:
            raise TemplateError(f"email template {exc.name or name} line {exc.lineno}: {exc.message}") from exc
        subject = getattr(text_module, "subject", None) or values.get("subject") or values.get("title") or self.app_name
        subject = _HEADER_UNSAFE.sub(" ", str(subject)).strip()[:250]
        text = _BLANK_RUNS.sub("\n\n", str(text_module)).strip() + "\n"
        return RenderedEmail(subject=subject, text=text, html=html, template=used)
