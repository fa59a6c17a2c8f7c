"""core.assets / core.downloads without the network: sha256 refetch logic with fake downloads, the
verification stamp, missing-tool messages, lexnames generation, idempotent image-source unpacking,
and the pinned table itself."""
import hashlib
import io
import json
import os
import sys
import tarfile

import pytest

from core import assets, downloads, paths
from core.downloads import AssetError


@pytest.fixture(autouse=True)
def data_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("TAXOLENS_DATA", str(tmp_path / "data"))
    return tmp_path / "data"


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


class FakeFetch:
    """Writes the given payloads in turn, one per call (the last one repeats)."""

    def __init__(self, *payloads: bytes):
        self.payloads, self.calls = list(payloads), 0

    def __call__(self, dest):
        dest.write_bytes(self.payloads[min(self.calls, len(self.payloads) - 1)])
        self.calls += 1


def test_fetch_verified_downloads_once_then_uses_stamp(data_dir):
    good = b"good bytes"
    fetch = FakeFetch(good)
    dest = paths.downloads_dir() / "thing.bin"
    assert downloads.fetch_verified(dest, sha(good), fetch, "thing") == dest
    assert downloads.fetch_verified(dest, sha(good), fetch, "thing") == dest
    assert fetch.calls == 1 and dest.read_bytes() == good


def test_corrupt_download_is_refetched_once(data_dir):
    good = b"good bytes"
    fetch = FakeFetch(b"truncated", good)
    dest = paths.downloads_dir() / "thing.bin"
    downloads.fetch_verified(dest, sha(good), fetch, "thing")
    assert fetch.calls == 2 and dest.read_bytes() == good


def test_still_wrong_after_refetch_is_an_error_and_never_left_on_disk(data_dir):
    fetch = FakeFetch(b"evil", b"still evil")
    dest = paths.downloads_dir() / "thing.bin"
    with pytest.raises(AssetError, match="sha256 mismatch") as err:
        downloads.fetch_verified(dest, sha(b"good"), fetch, "thing")
    assert sha(b"still evil") in str(err.value)
    assert fetch.calls == 2 and not dest.exists()


def test_partial_file_already_on_disk_is_replaced(data_dir):
    good = b"complete file"
    dest = paths.downloads_dir() / "thing.bin"
    dest.parent.mkdir(parents=True)
    dest.write_bytes(b"compl")                       # an interrupted earlier download
    fetch = FakeFetch(good)
    downloads.fetch_verified(dest, sha(good), fetch, "thing")
    assert fetch.calls == 1 and dest.read_bytes() == good


def test_stamp_skips_rehash_until_the_file_changes(data_dir, monkeypatch):
    f = data_dir / "big.bin"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"x" * 1000)
    assert downloads.is_verified(f, sha(b"x" * 1000))

    real_hash = downloads.sha256_file

    def no_hashing(path):
        raise AssertionError("re-hashed a file whose stamp was valid")
    monkeypatch.setattr(downloads, "sha256_file", no_hashing)
    assert downloads.is_verified(f, sha(b"x" * 1000))
    monkeypatch.setattr(downloads, "sha256_file", real_hash)
    f.write_bytes(b"y" * 999)                        # changed size → hashed again → mismatch
    assert not downloads.is_verified(f, sha(b"x" * 1000))
    assert not downloads.is_verified(data_dir / "absent.bin", sha(b""))


def test_a_check_that_writes_nothing_hashes_an_unchanged_file_once_per_process(data_dir, monkeypatch):
    f = data_dir / "weights.bin"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"w" * 100)
    hashed, real_hash = [], downloads.sha256_file
    monkeypatch.setattr(downloads, "sha256_file", lambda path: hashed.append(path) or real_hash(path))
    for _ in range(3):                               # e.g. every job of a sweep plan validated
        assert downloads.is_verified(f, sha(b"w" * 100), record=False)
    assert len(hashed) == 1 and not (paths.downloads_dir() / "verified.json").exists()
    assert not downloads.is_verified(f, sha(b"other"), record=False)      # another hash: checked
    f.write_bytes(b"v" * 100)                        # same size, new content and mtime
    mtime = f.stat().st_mtime_ns + 10**9
    os.utime(f, ns=(mtime, mtime))
    assert not downloads.is_verified(f, sha(b"w" * 100), record=False)
    assert len(hashed) == 3


def test_missing_npm_says_how_to_install_it(data_dir, monkeypatch):
    monkeypatch.setenv("PATH", str(data_dir))        # no npm on this PATH
    src = assets.source("iconify-json-noto")
    with pytest.raises(AssetError, match=r"npm not found: install Node.js/npm \(Debian: apt-get install npm\)"):
        assets._npm_pack(src)(data_dir / "x.tgz")


def test_missing_apt_get_and_dpkg_messages(data_dir, monkeypatch):
    monkeypatch.setenv("PATH", str(data_dir))
    with pytest.raises(AssetError, match="apt-get not found: WordNet comes from Debian packages"):
        assets._apt_download(assets.source("wordnet-base"))(data_dir / "x.deb")
    with pytest.raises(AssetError, match=r"dpkg-deb not found: install dpkg"):
        downloads.require_tool("dpkg-deb", "install dpkg (Debian: apt-get install dpkg)")


def test_failed_tool_reports_its_output():
    with pytest.raises(AssetError, match="registry said no") as err:
        downloads.run_tool([sys.executable, "-c", "import sys; sys.stderr.write('registry said no'); sys.exit(3)"],
                           "fake download")
    assert "exit 3" in str(err.value)


_MAN_SAMPLE = """.SS Lexicographer Files
.TS
center ;
l l l.
\\fBFile Number\\fP\t\\fBName\\fP\t\\fBContents\\fP
_
00\tadj.all\tall adjective clusters
01\tadj.pert\trelational adjectives (pertainyms)
02\tadv.all\tall adverbs
03\tnoun.Tops\tunique beginner for nouns
04\tverb.body\tverbs of grooming
05\tnoun.person  \tnouns denoting people
.TE
"""


def test_lexnames_from_man_page():
    assert assets.lexnames_from_man(_MAN_SAMPLE) == (
        "00\tadj.all\t3\n01\tadj.pert\t3\n02\tadv.all\t4\n03\tnoun.Tops\t1\n04\tverb.body\t2\n05\tnoun.person\t1\n")


@pytest.mark.parametrize("broken, problem", [
    (_MAN_SAMPLE.replace("04\tverb.body", "04\tprep.body"), "unknown syntactic category"),
    (_MAN_SAMPLE.replace("02\tadv.all", "07\tadv.all"), "not 00, 01, 02"),
    (".TH LEXNAMES 5WN\nno table here\n", "not 00, 01, 02"),
])
def test_lexnames_rejects_a_changed_table(broken, problem):
    with pytest.raises(AssetError, match=problem):
        assets.lexnames_from_man(broken)


def _fake_npm_tgz() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tar:
        for name, text in {"package/package.json": '{"name": "@demo/emoji", "version": "1.0.0"}',
                           "package/assets/dog.svg": "<svg/>"}.items():
            info = tarfile.TarInfo(name)
            info.size = len(text)
            tar.addfile(info, io.BytesIO(text.encode()))
    return buf.getvalue()


def test_image_source_unpacks_once_and_reruns_are_no_ops(data_dir, monkeypatch):
    tgz = _fake_npm_tgz()
    src = assets.Source("demo-emoji", "npm", "npm", "@demo/emoji", "1.0.0", sha(tgz), "MIT", "", "")
    monkeypatch.setattr(assets, "sources", lambda: {src.id: src})
    fetch = FakeFetch(b"partial", tgz)               # first download corrupt → refetched
    monkeypatch.setattr(assets, "_npm_pack", lambda s: fetch)

    package = assets.fetch_image_source(src)
    assert package == paths.sources_dir() / "demo-emoji-1.0.0" / "package"
    assert (package / "assets" / "dog.svg").read_text() == "<svg/>"
    assert fetch.calls == 2
    assert assets.source_dir("demo-emoji") == package

    monkeypatch.setattr(assets.tarfile, "open", lambda *a, **k: pytest.fail("re-extracted on a re-run"))
    assert assets.fetch_image_source(src) == package
    assert fetch.calls == 2
    assert [row["ready"] for row in assets.status()] == [True]


def test_source_dir_before_fetch_says_make_assets(data_dir):
    with pytest.raises(AssetError, match="run `make assets`"):
        assets.source_dir("iconify-json-noto")
    with pytest.raises(AssetError, match="unknown npm 'emoji'"):
        assets.source_dir("emoji")


def test_atomic_dir_keeps_the_old_folder_when_writing_fails(data_dir):
    final = data_dir / "out"
    final.mkdir(parents=True)
    (final / "old.txt").write_text("old")
    with pytest.raises(RuntimeError):
        with downloads.atomic_dir(final) as tmp:
            (tmp / "new.txt").write_text("half")
            raise RuntimeError("crash mid-write")
    assert [p.name for p in data_dir.iterdir()] == ["out"]
    assert [p.name for p in final.iterdir()] == ["old.txt"]
    with downloads.atomic_dir(final) as tmp:
        (tmp / "new.txt").write_text("new")
    assert [p.name for p in final.iterdir()] == ["new.txt"]
    assert [p.name for p in data_dir.iterdir()] == ["out"]
    # Published with ordinary permissions, not mkdtemp's owner-only 0700.
    assert final.stat().st_mode & 0o777 == downloads.default_mode(directory=True)
    assert (final / "new.txt").stat().st_mode & 0o777 == downloads.default_mode()


def test_pinned_table_is_consistent():
    table = assets.sources()
    for lm_id, spec in assets.KNOWN_LMS.items():
        assert table[lm_id].kind == "lm"
        assert all(table[p].kind == "wheel" for p in spec.parts + spec.extras)
    assert any(spec.fetched_by_default for spec in assets.KNOWN_LMS.values())
    # Folder names keep the layout other code (and older data dirs) rely on.
    folders = {assets._source_folder(table[i]).name for i in assets.image_source_ids()}
    assert "lobehub-fluent-emoji-3d-1.1.0" in folders and "iconify-json-noto-1.2.9" in folders
    # one pinned npm package per folder the dataset builder reads, and no other
    from core.data import build
    prefixes = {f.rsplit("-", 1)[0] for f in folders}
    assert prefixes == set(build.PACKAGES.values()) and len(folders) == len(build.PACKAGES) == 12
    assert all(src.license and src.credit for src in table.values())


def test_efficientnet_weights_are_found_and_verified():
    path = assets.efficientnet_weights("lite2")
    assert path.suffix == ".pth" and "lite2" in path.name
    assert assets.efficientnet_weights("efficientnet-lite0").name.startswith("efficientnet-lite0")
    with pytest.raises(AssetError, match="unknown encoder 'efficientnet-b7'"):
        assets.efficientnet_weights("b7")


def test_tampered_encoder_is_rejected(monkeypatch):
    real = assets.source("efficientnet-lite2")
    fake = assets.Source(**{**real.__dict__, "sha256": "0" * 64})
    monkeypatch.setattr(assets, "sources", lambda: {fake.id: fake})
    with pytest.raises(AssetError, match="does not match the sha256 pinned"):
        assets.efficientnet_weights("lite2")


def test_lm_errors_are_clear(data_dir):
    with pytest.raises(AssetError, match="unknown LM 'gpt-9'"):
        assets.lm_dir("gpt-9")
    with pytest.raises(AssetError, match=r"fetch --lm gemma3-270m.*Gemma Terms of Use"):
        assets.lm_dir("gemma3-270m")


@pytest.mark.parametrize("argv, fragment", [(["--only", "models"], "unknown asset group(s) models"),
                                            (["--only", ","], "unknown asset group(s) ','"),
                                            (["--only", "lms", "--lm", "gpt-9"], "unknown LM 'gpt-9'")])
def test_cli_rejects_unknown_groups_and_lms_as_bad_input(argv, fragment, data_dir, capsys):
    with pytest.raises(SystemExit) as stop:                 # exit 2, as every bad input; before the lock
        assets.main(["fetch", *argv])
    assert stop.value.code == 2 and fragment in capsys.readouterr().err
    assert not (paths.downloads_dir() / ".fetch.lock").exists()


def test_stamp_file_is_json(data_dir):
    f = data_dir / "a.bin"
    f.parent.mkdir(parents=True)
    f.write_bytes(b"a")
    downloads.is_verified(f, sha(b"a"))
    stamps = json.loads((paths.downloads_dir() / "verified.json").read_text())
    assert stamps[str(f.resolve())]["sha256"] == sha(b"a")
