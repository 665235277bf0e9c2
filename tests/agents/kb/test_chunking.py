"""Chunking: sizes, overlap, Chinese sentence ends, sections kept apart, nothing cut inside a character."""

from __future__ import annotations

import itertools

import pytest

from agents.kb.chunking import chunk_sections, safe_cut, split_sentences
from agents.kb.parsers import Section


def test_sentences_end_at_chinese_and_latin_punctuation() -> None:
    text = "密码必须8到20位。失败5次锁定！真的吗？是的；好。“引号。”Done. Next line\nlast"
    parts = split_sentences(text)
    assert "".join(parts) == text
    assert parts[:5] == ["密码必须8到20位。", "失败5次锁定！", "真的吗？", "是的；", "好。"]
    assert "“引号。”" in parts


def test_chunks_fit_overlap_and_keep_sections_apart() -> None:
    zh = "用户登录时密码长度必须在8到20位之间。" * 30
    en = " ".join(f"Rule {i} says the value must stay below {i * 10}." for i in range(40))
    chunks = chunk_sections([Section("登录 > 密码", zh), Section("Limits", en), Section("Short", "tiny")], 200, 40)
    assert [c.index for c in chunks] == list(range(len(chunks)))
    assert all(len(c.text) <= 200 for c in chunks)
    by_section = {s: [c for c in chunks if c.section == s] for s in ("登录 > 密码", "Limits", "Short")}
    assert [c.text for c in by_section["Short"]] == ["tiny"]
    zh_chunks = by_section["登录 > 密码"]
    assert len(zh_chunks) > 2
    for chunk in zh_chunks:
        assert chunk.text.endswith("。")  # cut at sentence ends, not mid-sentence
    for left, right in itertools.pairwise(zh_chunks):
        assert right.text.startswith("用户登录")  # the overlap starts at a sentence
        assert left.text[-20:] == right.text[:20]  # one whole sentence repeated
    en_chunks = by_section["Limits"]
    for left, right in itertools.pairwise(en_chunks):
        head = right.text.split(" ")[0]
        assert head in left.text.split(" ")  # overlap starts at a word
    assert len({c.content_hash for c in chunks}) == len({c.text for c in chunks})


def test_paragraphs_pack_together_and_long_unspaced_text_is_cut() -> None:
    text = "第一段。\n\n第二段。\n\n" + "无标点长句" * 100
    chunks = chunk_sections([Section("", text)], 120, 0)
    assert chunks[0].text.startswith("第一段。\n\n第二段。")
    assert all(len(c.text) <= 120 for c in chunks)
    assert "".join(c.text for c in chunks).replace("\n\n", "") == text.replace("\n\n", "")


def test_never_cut_inside_a_character_sequence() -> None:
    text = "e\u0301" * 10  # e + combining acute accent
    assert safe_cut(text, 5) == 4
    family = "\U0001f468\u200d\U0001f469"
    assert safe_cut(family, 2) == 1
    chunks = chunk_sections([Section("", text * 10)], 15, 0)
    assert all(not c.text.startswith("\u0301") for c in chunks)


def test_bad_sizes_are_refused() -> None:
    with pytest.raises(ValueError):
        chunk_sections([Section("", "x")], 100, 100)
