"""The processor record of a run: read from /proc/cpuinfo's first model name, with a fallback."""

from __future__ import annotations

import platform

from sweettok.report.provenance import cpu_name


def test_cpu_name_reads_the_first_model_name(tmp_path):
    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nvendor_id\t: X\nmodel name\t: Some CPU 9000 @ 2.0GHz\nflags\t\t: a b\n\n"
                    "processor\t: 1\nmodel name\t: Other CPU\n")
    assert cpu_name(info) == "Some CPU 9000 @ 2.0GHz"


def test_cpu_name_without_a_model_name_falls_back(tmp_path):
    empty = tmp_path / "cpuinfo"
    empty.write_text("processor\t: 0\nmodel name\t:   \n")
    expected = platform.processor() or "unknown"
    assert cpu_name(empty) == expected
    assert cpu_name(tmp_path / "missing") == expected
