"""The offline index the install tests trust is laid out as pip and uv read a PEP 503 index."""

from __future__ import annotations

from pathlib import Path

from support.fake_index import build_wheel, write_index


def test_project_directories_carry_the_pep_503_normalised_name(tmp_path: Path) -> None:
    """A wheel file names its project `typing_extensions`; the index page is `typing-extensions/`
    (a mirror of the real CPU wheelhouse needs it, and torch depends on it)."""
    wheels = [
        build_wheel(tmp_path, "typing_extensions", "4.16.0", {"typing_extensions.py": ""}),
        build_wheel(tmp_path, "Jinja2", "3.1.6", {"jinja2/__init__.py": ""}),
    ]
    index = write_index(tmp_path / "index", {"cpu": wheels})
    assert sorted(index.wheels) == ["cpu/jinja2", "cpu/typing-extensions"]
    assert (tmp_path / "index" / "cpu" / "typing-extensions" / wheels[0].name).is_file()
    root_page = (tmp_path / "index" / "cpu" / "index.html").read_text()
    assert 'href="typing-extensions/"' in root_page and "typing_extensions/" not in root_page
