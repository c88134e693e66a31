"""/proc/<pid>/maps text in the 2.6.11 layout (fs/proc/task_mmu.c show_map):
``%08lx-%08lx %c%c%c%c %08lx %02x:%02x %lu `` then, for a VMA with a file,
spaces up to column 25 + 6 * sizeof(void *) = 73 (at least one) and the
path. The offset is vm_pgoff << 12 ("2.6") or 0 for VMAs without a file
("modern")."""

from __future__ import annotations

from pathlib import Path

import pytest

from rmaplab.cli.main import main
from rmaplab.kernel import Kernel
from rmaplab.show.maps import format_vma, maps_text

DATA = Path(__file__).parent / "data" / "traces"
BASIC = str(DATA / "basic.jsonl")
P = 4096
B = 0x2AAAAAAAB000


def test_basic_trace_maps_both_styles(capsys):
    # pid 1: page 1 unmapped, page 0 made read-only; pid 2 untouched by either
    assert main(["replay", BASIC, "--maps", "-q"]) == 0
    assert capsys.readouterr().out == (
        "== pid 1 ==\n"
        "2aaaaaaab000-2aaaaaaac000 r--p 2aaaaaaab000 00:00 0 \n"
        "2aaaaaaad000-2aaaaaaae000 rw-p 2aaaaaaad000 00:00 0 \n"
        "== pid 2 ==\n"
        "2aaaaaaab000-2aaaaaaae000 rw-p 2aaaaaaab000 00:00 0 \n")
    assert main(["replay", BASIC, "--maps", "--maps-offset", "modern", "-q"]) == 0
    assert capsys.readouterr().out == (
        "== pid 1 ==\n"
        "2aaaaaaab000-2aaaaaaac000 r--p 00000000 00:00 0 \n"
        "2aaaaaaad000-2aaaaaaae000 rw-p 00000000 00:00 0 \n"
        "== pid 2 ==\n"
        "2aaaaaaab000-2aaaaaaae000 rw-p 00000000 00:00 0 \n")


def test_bad_offset_style_is_usage_error(capsys):
    with pytest.raises(SystemExit) as ei:
        main(["replay", BASIC, "--maps-offset", "2.4"])
    assert ei.value.code == 2


def _kernel_with_files() -> Kernel:
    k = Kernel()
    k.declare_file("libfoo.so", 10000)
    k.spawn(1)
    assert k.mmap(1, None, 4 * P, "r-x", ["private"], file="libfoo.so", offset=P) == B
    assert k.mmap(1, None, 2 * P, "rw-", ["shared", "anonymous"]) == B + 4 * P
    assert k.mmap(1, None, P, "---", ["private", "anonymous"]) == B + 6 * P
    return k


@pytest.mark.parametrize("style", ["2.6", "modern"])
def test_file_lines_pad_path_to_column_73(style):
    k = _kernel_with_files()
    lines = maps_text(k.mm(1), style).splitlines(keepends=True)
    assert len(lines) == 3 and all(ln.endswith("\n") for ln in lines)
    f, shm, anon = (ln.rstrip("\n") for ln in lines)

    head = f.split()
    assert head[:4] == ["2aaaaaaab000-2aaaaaaaf000", "r-xp", "00001000", "00:00"]
    assert int(head[4]) > 0                          # the file's inode
    assert f.index("libfoo.so") == 73 and f.endswith(" libfoo.so")
    assert f[:73] == (" ".join(head[:5]) + " ").ljust(73)

    # shared anonymous memory is a deleted shmem file, offset 0 in both styles
    assert shm.split()[:4] == ["2aaaaaaaf000-2aaaaaab1000", "rw-s", "00000000", "00:00"]
    assert shm.index("/dev/zero (deleted)") == 73 and shm.endswith("/dev/zero (deleted)")
    assert shm.split()[4] != head[4]                 # another inode

    off = f"{(B + 6 * P):08x}" if style == "2.6" else "00000000"
    assert anon == f"2aaaaaab1000-2aaaaaab2000 ---p {off} 00:00 0 "


def test_short_addresses_use_eight_digits_and_pad_to_73():
    k = Kernel()
    k.declare_file("f", P)
    k.spawn(1)
    assert k.mmap(1, 0x10000, P, "r--", ["private", "fixed"], file="f") == 0x10000
    assert k.mmap(1, 0x20000, P, "rw-", ["private", "anonymous", "fixed"]) == 0x20000
    vf, va = k.mm(1).mmap
    line = format_vma(vf)
    assert line.startswith("00010000-00011000 r--p 00000000 00:00 ")
    assert line.index(" f") == 72 and line.endswith(" f")
    # anonymous: vm_pgoff is the start page 0x20, printed << 12
    assert format_vma(va) == "00020000-00021000 rw-p 00020000 00:00 0 "
    assert format_vma(va, "modern") == "00020000-00021000 rw-p 00000000 00:00 0 "
    with pytest.raises(ValueError):
        format_vma(va, "3.0")
