"""The collection's docs site: the guides of docs/ as antsibull-docs extra docs, the docs lint, the Sphinx build.

The guides are written in Markdown (docs/*.md, read on GitHub and tested by tests/ecosystem/test_guides.py);
antsibull-docs takes extra docs only as RST, from docs/docsite/rst/. ``rst`` writes those RST files from the
Markdown (m2r2), so the two never disagree; they are committed because the collection artifact carries them
and docs.ansible.com builds its pages from that artifact.

Usage: python hack/docsite.py COMMAND
  rst            write docs/docsite/rst/<ref>.rst for every guide that docs/docsite/extra-docs.yml lists
  check          fail when a committed .rst is not what ``rst`` would write
  lint           antsibull-docs lint-collection-docs with the plugin docs and the extra docs' references
  site [DEST]    the HTML site (antsibull-docs + Sphinx) from the docs as they are, into DEST/html
  build [DEST]   what `make docs` runs: rst, lint, then site (DEST defaults to docs/build)
"""
import os
import pathlib
import re
import shutil
import subprocess
import sys
from urllib.parse import urlsplit

import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent
DOCS = ROOT / "docs"
DOCSITE = DOCS / "docsite"
RST_DIR = DOCSITE / "rst"
BIN = pathlib.Path(sys.executable).parent
COLLECTION = "talos.linux"
LABEL_PREFIX = f"ansible_collections.{COLLECTION}.docsite."
# Plugin types whose pages antsibull-docs writes, by the directory their source lives in.
PLUGIN_DIRS = {"modules": "module", "inventory": "inventory", "connection": "connection"}

# What an offline build cannot resolve (the targets live on docs.ansible.com, reached through intersphinx):
# tolerated so that `make docs` works without network; anything else Sphinx warns about fails the build.
EXTERNAL_TARGET = re.compile(
    r"undefined label: '(?!ansible_collections\.talos\.linux\.)[^']+'"
    r"|'envvar' reference target not found: ANSIBLE_\w+"
    r"|failed to reach any of the inventories"
    r"|intersphinx inventory .* not (fetchable|readable)")


def repository_url():
    galaxy = yaml.safe_load((ROOT / "galaxy.yml").read_text())
    return galaxy["repository"].rstrip("/")


def guide_refs():
    """The docsite refs listed in extra-docs.yml, in order: 'getting_started' is docs/getting-started.md."""
    index = yaml.safe_load((DOCSITE / "extra-docs.yml").read_text())
    return [entry if isinstance(entry, str) else entry["ref"]
            for section in index["sections"] for entry in section["toctree"]]


def guide_source(ref):
    return DOCS / f"{ref.replace('_', '-')}.md"


def collection_plugins():
    """{'talos.linux.talos_config': 'module', ...}: the names a guide may mention in backticks."""
    plugins = {}
    for directory, plugin_type in PLUGIN_DIRS.items():
        for path in (ROOT / "plugins" / directory).glob("*.py"):
            if not path.name.startswith("_"):
                plugins[f"{COLLECTION}.{path.stem}"] = plugin_type
    for path in (ROOT / "roles").iterdir():
        if (path / "meta" / "argument_specs.yml").exists():
            plugins[f"{COLLECTION}.{path.name}"] = "role"
    return plugins


def make_converter(refs_by_source, plugins, source):
    """An m2r2 Markdown-to-RST converter that links guides, repository files and plugins the docsite way."""
    from m2r2.m2r2 import BaseM2R2
    from m2r2.rst.renderer import RestRenderer

    repository = repository_url()

    class GuideRenderer(RestRenderer):
        def link(self, token, state):
            url = token["attrs"]["url"]
            parts = urlsplit(url)
            if parts.scheme or parts.netloc or not parts.path:
                return super().link(token, state)
            target = (source.parent / parts.path).resolve()
            if target in refs_by_source:  # another guide: a Sphinx reference to its label
                text = "".join(child.get("raw", "") for child in token["children"]) or refs_by_source[target]
                return rf"\ :ref:`{_escape_role(text)} <{LABEL_PREFIX}{refs_by_source[target]}>`\ "
            # any other file of the repository: its page on the forge
            relative = target.relative_to(ROOT).as_posix()
            kind = "tree" if target.is_dir() else "blob"
            fragment = f"#{parts.fragment}" if parts.fragment else ""
            token["attrs"]["url"] = f"{repository}/{kind}/main/{relative}{fragment}"
            return super().link(token, state)

        def block_code(self, token, state):
            # Ansible's YAML carries Jinja: highlighted as the Ansible docs do (ansible-pygments' lexer); the
            # guides' YAML is parsed and run by tests/ecosystem/test_guides.py.
            info = token.get("attrs", {}).get("info", "")
            if info.split()[:1] == ["yaml"]:
                token = {**token, "attrs": {**token.get("attrs", {}), "info": "yaml+jinja"}}
            return super().block_code(token, state)

        def codespan(self, token, state):
            name = token.get("raw", "").strip()
            if name in plugins:  # the plugin's own page
                return rf"\ :ansplugin:`{name}#{plugins[name]}`\ "
            return super().codespan(token, state)

    return BaseM2R2(renderer=GuideRenderer(anonymous_references=True))


def _escape_role(text):
    return text.replace("<", r"\<").replace(">", r"\>").replace("`", r"\`")


def render_guide(ref, refs_by_source, plugins):
    source = guide_source(ref)
    body = make_converter(refs_by_source, plugins, source)(source.read_text())
    header = (f".. Generated from docs/{source.name} by hack/docsite.py: edit that file and run `make docs`.\n\n"
              f".. _{LABEL_PREFIX}{ref}:\n")
    return header + "\n" + body.strip("\n") + "\n"


def rendered_guides():
    refs = guide_refs()
    missing = [str(guide_source(ref).relative_to(ROOT)) for ref in refs if not guide_source(ref).exists()]
    if missing:
        raise SystemExit(f"docs/docsite/extra-docs.yml lists guides that do not exist: {', '.join(missing)}")
    refs_by_source = {guide_source(ref).resolve(): ref for ref in refs}
    plugins = collection_plugins()
    return {RST_DIR / f"{ref}.rst": render_guide(ref, refs_by_source, plugins) for ref in refs}


def write_rst():
    guides = rendered_guides()
    RST_DIR.mkdir(parents=True, exist_ok=True)
    for stale in set(RST_DIR.glob("*.rst")) - set(guides):
        stale.unlink()
    for path, text in guides.items():
        if not path.exists() or path.read_text() != text:
            path.write_text(text)
            print(f"wrote {path.relative_to(ROOT)}")
    return 0


def check_rst():
    guides = rendered_guides()
    stale = sorted(str(p.relative_to(ROOT)) for p in set(RST_DIR.glob("*.rst")) - set(guides))
    outdated = sorted(str(p.relative_to(ROOT)) for p, text in guides.items()
                      if not p.exists() or p.read_text() != text)
    for path in outdated:
        print(f"{path} is not what its guide renders to")
    for path in stale:
        print(f"{path} belongs to no guide of docs/docsite/extra-docs.yml")
    if outdated or stale:
        print("Run `make docs` (or python hack/docsite.py rst) and commit docs/docsite/rst/.")
        return 1
    return 0


def tool_env():
    """antsibull-docs finds the collection through .collections (a link to this checkout) and the venv's tools."""
    sys.path.insert(0, str(ROOT))
    from tests.emulator._import_path import COLLECTIONS_ROOT, ensure_collection_importable

    ensure_collection_importable()
    env = {k: v for k, v in os.environ.items() if not k.startswith("ANSIBLE_")}
    env.update(ANSIBLE_COLLECTIONS_PATH=str(COLLECTIONS_ROOT), PATH=f"{BIN}{os.pathsep}{env.get('PATH', '')}")
    return env


def lint():
    command = [str(BIN / "antsibull-docs"), "lint-collection-docs", "--plugin-docs", "--check-extra-docs-refs",
               str(ROOT)]
    return subprocess.run(command, cwd=ROOT, env=tool_env(), check=False).returncode


def site(dest):
    """The HTML site in DEST/html; Sphinx's warnings fail it, except links to docs.ansible.com when offline."""
    env = tool_env()
    site = dest / "sphinx"
    if site.exists():
        shutil.rmtree(site)
    site.mkdir(parents=True)
    site.chmod(0o755)
    run = [str(BIN / "antsibull-docs")]
    subprocess.run(run + ["sphinx-init", "--use-current", "--squash-hierarchy", "--dest-dir", str(site),
                          "--project", COLLECTION, "--copyright", "talos.linux contributors",
                          "--title", "Talos Linux collection for Ansible", "--no-add-antsibull-docs-version",
                          COLLECTION], env=env, check=True, stdout=subprocess.DEVNULL)
    (site / "rst").chmod(0o755)  # antsibull-docs wants the output directory writable only by itself
    subprocess.run(run + ["--config-file", str(site / "antsibull-docs.cfg"), "collection", "--use-current",
                          "--squash-hierarchy", "--cleanup", "everything", "--fail-on-error",
                          "--no-add-antsibull-docs-version", "--dest-dir", str(site / "rst"), COLLECTION],
                   env=env, check=True)
    html, warnings = dest / "html", dest / "sphinx-warnings.txt"
    if html.exists():
        shutil.rmtree(html)
    if warnings.exists():
        warnings.unlink()
    sphinx = subprocess.run([str(BIN / "sphinx-build"), "-b", "html", "-q", "-c", str(site), "-w", str(warnings),
                             "--keep-going", str(site / "rst"), str(html)], env=env, check=False,
                            stderr=subprocess.DEVNULL)  # the warnings are in the file, judged below
    text = warnings.read_text() if warnings.exists() else ""
    problems = own_warnings(text)
    for line in problems:
        print(line)
    offline = len(warning_entries(text)) - len(problems)
    if offline:
        print(f"{offline} links to docs.ansible.com and other sites could not be checked without network "
              f"(listed in {warnings})")
    if sphinx.returncode or problems:
        print(f"the docs site did not build cleanly ({len(problems)} warnings about this collection's pages)")
        return 1
    print(f"docs site: {html / 'index.html'}")
    return 0


def warning_entries(text):
    """Sphinx's warnings file: one entry per warning, its continuation lines indented."""
    entries = []
    for line in text.splitlines():
        if line.startswith((" ", "\t", "intersphinx inventory")) and entries:
            entries[-1] += "\n" + line
        elif line.strip():
            entries.append(line)
    return entries


def own_warnings(text):
    """The warnings an offline build does not explain."""
    return [entry for entry in warning_entries(text) if not EXTERNAL_TARGET.search(entry)]


def main(argv):
    command = argv[0] if argv else "build"
    if command == "rst":
        return write_rst()
    if command == "check":
        return check_rst()
    if command == "lint":
        return lint()
    dest = pathlib.Path(argv[1]).resolve() if len(argv) > 1 else DOCS / "build"
    if command == "site":
        return site(dest)
    if command == "build":
        return write_rst() or lint() or site(dest)
    print(__doc__)
    return 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
