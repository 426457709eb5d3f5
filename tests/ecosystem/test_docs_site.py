"""The docs site (make docs): antsibull-docs lints the collection's docs, and a real build has every page; and the
changelog: antsibull-changelog accepts every fragment, and CHANGELOG.md is what it generates.

hack/docsite.py does the work; these tests run it as `make docs` does, the build into a temporary directory.
"""

import html
import re
import subprocess
import sys

import pytest
import yaml

from tests.integration.playbook import BIN, ROOT

DOCSITE = ROOT / "hack" / "docsite.py"
PLUGIN_PAGES = {"modules": "module", "inventory": "inventory", "connection": "connection"}


def docsite(*args, timeout=300):
    return subprocess.run([sys.executable, str(DOCSITE), *map(str, args)], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, check=False)


def guide_refs():
    index = yaml.safe_load((ROOT / "docs" / "docsite" / "extra-docs.yml").read_text())
    return [entry for section in index["sections"] for entry in section["toctree"]]


def guide_title(ref):
    markdown = (ROOT / "docs" / f"{ref.replace('_', '-')}.md").read_text()
    return re.search(r"^# (.+)$", markdown, re.M).group(1)


def expected_pages():
    pages = {f"{path.stem}_{kind}.html" for directory, kind in PLUGIN_PAGES.items()
             for path in (ROOT / "plugins" / directory).glob("*.py") if not path.name.startswith("_")}
    pages |= {f"{path.name}_role.html" for path in (ROOT / "roles").iterdir() if (path / "meta").is_dir()}
    return pages


def test_committed_guides_are_what_the_markdown_renders_to():
    run = docsite("check")
    assert run.returncode == 0, run.stdout + run.stderr


def test_antsibull_docs_lint_passes():
    """lint-collection-docs --plugin-docs --check-extra-docs-refs: plugin docs, role specs and the guides."""
    run = docsite("lint")
    assert run.returncode == 0, run.stdout + run.stderr


@pytest.fixture(scope="module")
def built_site(tmp_path_factory):
    dest = tmp_path_factory.mktemp("docsite")
    run = docsite("site", dest)
    assert run.returncode == 0, run.stdout[-5000:] + run.stderr[-5000:]
    return dest / "html"


def test_every_plugin_and_role_has_its_page(built_site):
    missing = sorted(page for page in expected_pages() if not (built_site / page).is_file())
    assert not missing, f"pages missing from the docs site: {missing}"
    index = (built_site / "index.html").read_text()
    assert all(page in index for page in expected_pages()), "the collection index links every page"
    for module in (ROOT / "plugins" / "modules").glob("talos_*.py"):
        text = (built_site / f"{module.stem}_module.html").read_text()
        assert "Parameters" in text and "Return Values" in text and "Examples" in text, module.stem


def test_every_guide_is_on_the_site_under_its_title(built_site):
    index = (built_site / "index.html").read_text()
    for ref in guide_refs():
        page = built_site / "docsite" / f"{ref}.html"
        assert page.is_file(), f"guide {ref} is not on the site"
        assert html.escape(guide_title(ref), quote=False) in page.read_text(), f"{ref}: its title"
        assert f"docsite/{ref}.html" in index, f"the index links guide {ref}"


def test_guides_link_each_other_and_the_plugin_pages(built_site):
    """A link to another guide becomes a link between site pages, a plugin name in backticks a link to its page."""
    text = (built_site / "docsite" / "getting_started.html").read_text()
    assert 'href="inventory.html' in text and 'href="security.html' in text
    assert 'href="../talos_facts_module.html' in text


def antsibull_changelog(*args):
    return subprocess.run([str(BIN / "antsibull-changelog"), *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=120, check=False)


def test_changelog_fragments_pass_the_lint():
    """Every fragment in changelogs/fragments (those added after the 0.1.0 entry too) is one antsibull-changelog takes."""
    run = antsibull_changelog("lint")
    assert run.returncode == 0 and not run.stdout.strip(), run.stdout + run.stderr


def test_changelog_md_is_generated_from_changelog_yaml(tmp_path):
    """Nobody edits CHANGELOG.md by hand: `antsibull-changelog release --version 0.1.0` (or generate) writes it."""
    generated = tmp_path / "CHANGELOG.md"
    run = antsibull_changelog("generate", "--output", str(generated), "--output-format", "md")
    assert run.returncode == 0, run.stdout + run.stderr
    assert generated.read_text() == (ROOT / "CHANGELOG.md").read_text(), \
        "CHANGELOG.md differs from changelogs/changelog.yaml: run antsibull-changelog generate"
