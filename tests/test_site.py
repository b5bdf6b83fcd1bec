"""The site builds strictly, shows every figure with alt text, typesets math and asks no other host."""
import re
from html.parser import HTMLParser


class Images(HTMLParser):
    def __init__(self):
        super().__init__()
        self.images, self.math, self.urls = [], 0, []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "img":
            self.images.append(attrs)
        if tag == "math":
            self.math += 1
        for name in ("src", "href"):
            if tag in ("img", "script", "link") and attrs.get(name):
                self.urls.append(attrs[name])


def parse(path):
    parser = Images()
    parser.feed(path.read_text())
    return parser


def test_vanishing_page_shows_its_figures_with_alt_text(site_dir):
    page = parse(site_dir / "vanishing" / "index.html")
    figures = [img for img in page.images if "/figures/" in img["src"]]
    assert [re.search(r"figures/vanishing/([\w-]+)\.png", img["src"]).group(1) for img in figures] == [
        "activation-derivatives", "gradient-norms", "depth-sweep"]
    for img in figures:
        assert len(img["alt"]) > 40
        assert (site_dir / "vanishing" / img["src"]).resolve().is_file()


def test_math_is_typeset_as_mathml_not_raw_tex(site_dir):
    html = (site_dir / "vanishing" / "index.html").read_text()
    assert parse(site_dir / "vanishing" / "index.html").math > 10
    assert "\\frac" not in html and "\\partial" not in html


def test_no_page_loads_anything_from_another_host(site_dir):
    for path in site_dir.rglob("*.html"):
        for url in parse(path).urls:
            assert not re.match(r"(https?:)?//", url), f"{path}: {url}"


def test_every_module_has_a_code_page(site_dir):
    assert (site_dir / "code" / "vgsite.topics.vanishing" / "index.html").is_file()
    assert "gradient_norms" in (site_dir / "code" / "vgsite.topics.vanishing" / "index.html").read_text()


def test_a_broken_link_anchor_or_image_fails_the_build_and_keeps_the_old_site(site_dir, tmp_path):
    import shutil

    from conftest import ROOT, copy_project, run_vgsite

    project = copy_project(tmp_path / "project")
    shutil.rmtree(project / "figures")
    shutil.copytree(ROOT / "figures", project / "figures")  # up to date: only MkDocs runs
    assert run_vgsite(project, "build", "-j", "1").returncode == 0
    index = (project / "site" / "index.html").read_bytes()
    for broken in ("[x](nosuchpage.md)", "[x](vanishing.md#no-such-anchor)", "![x](figures/nosuch.png)"):
        page = project / "docs" / "index.md"
        original = page.read_text()
        page.write_text(original + f"\n{broken}\n")
        result = run_vgsite(project, "build", "-j", "1")
        page.write_text(original)
        assert result.returncode == 1, broken
        assert "Site build failed" in result.stderr
        assert (project / "site" / "index.html").read_bytes() == index
        assert not list(project.glob(".site-*"))
