"""The exported tokenizer (kiln/tasks/text/tokenize.py) gives exactly TextVectorization's ids."""

from __future__ import annotations

import numpy as np

from kiln.tasks.text.tokenize import Tokenizer

TRICKY = ["Hello World, it's GREAT!", "ÄÖ über  Straße\tTAB\xa0nbsp end.Next", "x", "", "   ", "don't stop-me now",
          "émoji 🎉 ok?!", "a\u2003b c\r\nd", "UPPER lower MiXeD", "x " * 50]


def test_python_tokenizer_matches_text_vectorization(tmp_path):
    import keras

    for ngrams in (1, 2):
        tv = keras.layers.TextVectorization(max_tokens=40, output_mode="int", output_sequence_length=12,
                                            ngrams=ngrams if ngrams > 1 else None)
        tv.adapt(TRICKY)
        vocab = [str(t) for t in tv.get_vocabulary()]
        tok = Tokenizer(vocab, 12, ngrams)
        np.testing.assert_array_equal(tok.ids(TRICKY), tv(np.array(TRICKY)).numpy())
        tok.save(tmp_path)
        again = Tokenizer.load(tmp_path)
        np.testing.assert_array_equal(again.ids(TRICKY), tok.ids(TRICKY))
        assert again.ids([b"bytes \xff too"]).shape == (1, 12)


def test_words_layer_reads_the_words_of_ngram_ids():
    """layers.Words on n-gram ids (the bag's tokenisation) gives the ids a 1-gram tokenizer gives, truncated texts included."""
    from kiln.tasks.text.layers import Words
    from kiln.tasks.text.tokenize import ngrams, words

    texts = TRICKY + ["one two three four five six seven", "a b", "w " * 3 + "v u t s r q p o"]
    for k, length, full in ((1, 5, 9), (2, 6, 12), (3, 4, 12)):
        vocab = ["", "[UNK]", *sorted({t for s in texts for t in ngrams(words(s), range(1, k + 1))})][:60]
        got = Words(length, k)(Tokenizer(vocab, full, k).ids(texts)).numpy()
        np.testing.assert_array_equal(got, Tokenizer(vocab, length, 1).ids(texts), err_msg=f"ngrams={k}")


def test_char_wb_tokenizer_matches_text_vectorization(tmp_path):
    """analyzer=char_wb: tokenize.char_wb and TextVectorization with layers.char_wb_split give the same ids."""
    import keras

    from kiln.tasks.text.layers import char_wb_split
    from kiln.tasks.text.tokenize import char_wb

    assert char_wb("Hi, yo") == [" h", "hi", "i,", ", ", " hi", "hi,", "i, ", " hi,", "hi, ", " hi, ", " y", "yo", "o ", " yo", "yo ", " yo "]
    tv = keras.layers.TextVectorization(max_tokens=300, standardize="lower", split=char_wb_split, output_mode="int", output_sequence_length=40)
    tv.adapt(TRICKY)
    vocab = [str(t) for t in tv.get_vocabulary()]
    tok = Tokenizer(vocab, 40, analyzer="char_wb")
    np.testing.assert_array_equal(tok.ids(TRICKY), tv(np.array(TRICKY)).numpy())
    tok.save(tmp_path)
    again = Tokenizer.load(tmp_path)
    assert again.analyzer == "char_wb"
    np.testing.assert_array_equal(again.ids(TRICKY), tok.ids(TRICKY))
