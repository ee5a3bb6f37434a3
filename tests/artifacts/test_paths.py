from __future__ import annotations

import os
import re
from pathlib import Path

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from ratchet.artifacts import list_directory, normalize_artifact_path, safe_join
from ratchet.errors import InvalidInput

GOOD = [
    ("model/model.skops", "model/model.skops"),
    ("plots/roc.png", "plots/roc.png"),
    ("a", "a"),
    ("a/./b", "a/b"),
    ("./a", "a"),
    ("a//b", "a/b"),
    ("a/b/", "a/b"),
    ("a///b//./c/", "a/b/c"),
    ("..a/b..c/.hidden", "..a/b..c/.hidden"),
    ("a/~b", "a/~b"),
    ("100%25.png", "100%25.png"),  # decodes to '100%.png': harmless
    ("a%2Fb", "a%2Fb"),  # decodes to 'a/b': harmless
    ("50%off.txt", "50%off.txt"),  # not an escape
    ("résumé/ünïcode.txt", "résumé/ünïcode.txt"),
    ("console.log", "console.log"),  # only the exact device names are reserved
    ("a b/c d.txt", "a b/c d.txt"),
]

BAD = [
    ("", "empty"),
    (".", "names no file"),
    ("./", "names no file"),
    ("//", "absolute"),
    ("/etc/passwd", "absolute"),
    ("//proc/self/root/etc/passwd", "absolute"),
    ("C:\\Windows", "backslash"),
    ("C:/Windows", "drive"),
    ("c:x", "drive"),
    ("\\\\server\\share", "backslash"),
    ("a\\b", "backslash"),
    ("..", "'..'"),
    ("../x", "'..'"),
    ("a/../b", "'..'"),
    ("a/..", "'..'"),
    ("a/../../etc", "'..'"),
    ("%2e%2e/x", "'..'"),
    ("%2E%2e/x", "'..'"),
    ("a/%2e%2e%2fb", "'..'"),
    ("%252e%252e/x", "'..'"),  # double encoding
    ("%25252e%25252e/x", "'..'"),  # triple encoding
    ("%2fetc/passwd", "absolute"),
    ("a%5c..%5cb", "backslash"),
    ("a%00b", "U+0000"),
    ("a\x00b", "U+0000"),
    ("a\nb", "U+000A"),
    ("a\x7fb", "U+007F"),
    ("a\x85b", "U+0085"),
    ("a\u2028b", "U+2028"),
    ("a\ud800b", "U+D800"),
    ("~/x", "home"),
    ("~root/x", "home"),
    ("file.txt#/../../etc", "'#'"),
    ("a#b", "'#'"),
    ("a?b", "'?'"),
    ("a:b", "drive"),
    ("x/a:b", "':'"),
    ("file:///etc/passwd", "':'"),
    ("x/s3://bucket/key", "':'"),
    ("a*b", "'*'"),
    ("a|b", "'|'"),
    ("\uff0e\uff0e/x", "'..'"),  # fullwidth dots fold to '..' under NFKC
    ("a\uff0f..\uff0fb", "'..'"),  # fullwidth solidus
    ("a/...", "ends with"),
    ("a/b.", "ends with"),
    ("a/b ", "ends with"),
    ("a/.. /b", "ends with"),
    ("CON", "reserved"),
    ("a/nul.txt", "reserved"),
    ("a/Lpt1", "reserved"),
    ("./%2fetc/passwd", "absolute"),  # absolute only once './' is dropped
    ("./\uff0fa", "absolute"),  # likewise, through NFKC
    ("a/" + "x" * 256, "255 bytes"),
    ("a" * 5000, "longer than"),
]


@pytest.mark.parametrize(("raw", "expected"), GOOD)
def test_good_paths_normalize(raw: str, expected: str) -> None:
    assert normalize_artifact_path(raw) == expected
    assert normalize_artifact_path(expected) == expected


@pytest.mark.parametrize(("raw", "reason"), BAD)
def test_bad_paths_are_rejected_with_the_path_and_reason(raw: str, reason: str) -> None:
    with pytest.raises(InvalidInput) as info:
        normalize_artifact_path(raw)
    message = str(info.value)
    assert repr(raw) in message
    assert reason.lower() in message.lower()


@pytest.mark.parametrize("value", [None, b"a/b", Path("a/b"), 3])
def test_non_strings_are_rejected(value: object) -> None:
    with pytest.raises(InvalidInput, match="must be a string"):
        normalize_artifact_path(value)  # type: ignore[arg-type]


def _check_invariants(raw: str) -> None:
    try:
        result = normalize_artifact_path(raw)
    except InvalidInput:
        return
    assert result
    assert ".." not in result.split("/")
    assert not result.startswith("/")
    assert "\\" not in result
    assert "" not in result.split("/")
    assert normalize_artifact_path(result) == result


@given(st.text())
@example("a/%2e%2e/b")
@example("./\uff0fa")
@example("%c0%ae%c0%ae/x")  # overlong UTF-8 dots: decode to U+FFFD, not '.'
def test_random_text_only_ever_raises_invalid_input(raw: str) -> None:
    _check_invariants(raw)


# Paths built from the characters traversal attacks are made of find the corner cases
# plain random text almost never reaches.
_ATTACK_ALPHABET = st.sampled_from(
    [
        "a",
        ".",
        "/",
        "\\",
        "%",
        "2",
        "5",
        "e",
        "E",
        "f",
        "c",
        ":",
        "~",
        "#",
        " ",
        "\x00",
        "\uff0e",
        "\uff0f",
    ]
)


@given(st.lists(_ATTACK_ALPHABET, max_size=24).map("".join))
def test_attack_alphabet_only_ever_raises_invalid_input(raw: str) -> None:
    _check_invariants(raw)


# -- list_directory ----------------------------------------------------------------------


def test_list_directory_walks_sorted_relative_paths(tmp_path: Path) -> None:
    (tmp_path / "b").mkdir()
    (tmp_path / "b" / "deep").mkdir()
    (tmp_path / "empty").mkdir()
    for rel in ["z.txt", "a.txt", "b/x.bin", "b/deep/y.json", ".hidden"]:
        (tmp_path / rel).write_bytes(rel.encode())
    listed = list_directory(tmp_path)
    assert [rel for rel, _ in listed] == [".hidden", "a.txt", "b/deep/y.json", "b/x.bin", "z.txt"]
    for rel, path in listed:
        assert path.is_absolute()
        assert path == tmp_path / rel
        assert path.read_bytes() == rel.encode()


def test_list_directory_of_empty_dir_is_empty(tmp_path: Path) -> None:
    assert list_directory(tmp_path) == []
    assert list_directory(str(tmp_path)) == []


@pytest.mark.parametrize("target_kind", ["file", "dir", "dangling", "outside"])
def test_list_directory_rejects_symlinks(tmp_path: Path, target_kind: str) -> None:
    upload = tmp_path / "upload"
    (upload / "sub").mkdir(parents=True)
    (upload / "real.txt").write_text("x")
    outside = tmp_path / "secret"
    outside.mkdir()
    (outside / "id_rsa").write_text("key")
    target = {
        "file": upload / "real.txt",
        "dir": upload / "sub",
        "dangling": upload / "missing",
        "outside": outside,
    }[target_kind]
    link = upload / "sub" / "link"
    link.symlink_to(target)
    with pytest.raises(InvalidInput, match="symlinks are not followed") as info:
        list_directory(upload)
    assert str(link) in str(info.value)


def test_list_directory_rejects_a_missing_dir_or_a_file(tmp_path: Path) -> None:
    with pytest.raises(InvalidInput, match="no such directory"):
        list_directory(tmp_path / "nope")
    (tmp_path / "f").write_text("x")
    with pytest.raises(InvalidInput, match="it is a file"):
        list_directory(tmp_path / "f")


@pytest.mark.skipif(os.name == "nt", reason="POSIX allows these names; Windows does not")
def test_list_directory_rejects_unportable_file_names(tmp_path: Path) -> None:
    (tmp_path / "ok").mkdir()
    (tmp_path / "ok" / "a\\b.txt").write_text("x")
    with pytest.raises(InvalidInput, match=re.escape("backslashes are not allowed")) as info:
        list_directory(tmp_path)
    assert "cannot upload" in str(info.value)


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="needs FIFOs")
def test_list_directory_rejects_special_files(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "pipe")
    with pytest.raises(InvalidInput, match="not a regular file"):
        list_directory(tmp_path)


# -- safe_join ---------------------------------------------------------------------------


def test_safe_join_stays_under_root(tmp_path: Path) -> None:
    assert safe_join(tmp_path, "model/model.skops") == tmp_path.resolve() / "model/model.skops"
    assert safe_join(str(tmp_path), "a/./b//c/") == tmp_path.resolve() / "a/b/c"


@pytest.mark.parametrize("rel", ["../x", "/etc/passwd", "a/../../x", "%2e%2e/x", ""])
def test_safe_join_rejects_escaping_names(tmp_path: Path, rel: str) -> None:
    with pytest.raises(InvalidInput):
        safe_join(tmp_path, rel)


def test_safe_join_rejects_escape_through_a_symlink(tmp_path: Path) -> None:
    root = tmp_path / "download"
    root.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (root / "sneaky").symlink_to(outside)
    with pytest.raises(InvalidInput, match="outside") as info:
        safe_join(root, "sneaky/file.txt")
    assert "'sneaky/file.txt'" in str(info.value)
    (root / "self").symlink_to(root)
    with pytest.raises(InvalidInput):
        safe_join(root, "self")


def test_safe_join_allows_a_symlink_that_stays_inside(tmp_path: Path) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "alias").symlink_to(tmp_path / "real")
    assert safe_join(tmp_path, "alias/f.txt") == tmp_path.resolve() / "real" / "f.txt"
