"""cn.text: vocabularies on text that ships with Python, and the course's
word-vector operations checked against their formulas."""

import collections

import numpy as np
import pydoc_data.topics
import pytest

import corenn as cn
from corenn import text
from tolerances import assert_close, tolerance

# Real English text with no download: the help topics of the Python docs.
CORPUS = "\n".join(pydoc_data.topics.topics[k] for k in sorted(pydoc_data.topics.topics))


# ---------------------------------------------------------------- vocabularies

def test_tokenize_rule():
    assert text.tokenize("Don't STOP: x_1, 'quoted' well-known o'clock 3.14 Ünïcode") == \
        ["don't", "stop", "x", "1", "quoted", "well", "known", "o'clock", "3", "14", "ünïcode"]
    assert text.tokenize("Hello World", lower=False) == ["Hello", "World"]
    assert text.tokenize(" ,;- ") == []


def test_char_vocabulary_on_python_docs():
    vocab = cn.text.CharVocabulary(CORPUS)
    counts = collections.Counter(CORPUS)
    assert len(vocab) == len(counts) + 2
    tokens = vocab.get_vocabulary()
    assert tokens[:2] == [text.PAD, text.UNK]
    # descending count, ties by code point
    assert tokens[2:] == sorted(counts, key=lambda ch: (-counts[ch], ch))
    assert tokens[2] == " "
    sample = CORPUS[1000:3000]
    ids = vocab.encode(sample)
    assert ids.dtype == np.int64 and ids.shape == (len(sample),)
    assert (ids >= 2).all()
    assert vocab.decode(ids) == sample
    assert vocab.decode(np.concatenate([ids, [0, 0]])) == sample   # padding dropped


def test_char_vocabulary_unknown_and_limits():
    vocab = cn.text.CharVocabulary("aaabbc", max_size=4)
    assert vocab.get_vocabulary() == ["", "[UNK]", "a", "b"]
    np.testing.assert_array_equal(vocab.encode("abcz"), [2, 3, 1, 1])
    assert vocab.decode(vocab.encode("abc")) == "ab[UNK]"
    assert cn.text.CharVocabulary("aaabbc", min_count=2).get_vocabulary() == ["", "[UNK]", "a", "b"]
    assert cn.text.CharVocabulary("ba").get_vocabulary() == ["", "[UNK]", "a", "b"]  # tie: alphabetical


def test_word_vocabulary_on_python_docs():
    vocab = cn.text.WordVocabulary(CORPUS)
    words = text.tokenize(CORPUS)
    counts = collections.Counter(words)
    assert len(vocab) == len(counts) + 2 > 1000
    assert vocab.get_vocabulary()[2:] == sorted(counts, key=lambda w: (-counts[w], w))
    assert vocab.get_vocabulary()[2] == "the"
    assert vocab.counts["the"] == counts["the"]
    sentence = CORPUS[5000:6000]
    ids = vocab.encode(sentence)
    assert ids.dtype == np.int64 and (ids >= 2).all()
    assert vocab.decode(ids) == " ".join(text.tokenize(sentence))
    # the same text gives the same ids; splitting it in texts does not change the counts
    again = cn.text.WordVocabulary(CORPUS.split("\n"))
    assert again.get_vocabulary() == vocab.get_vocabulary()


def test_word_vocabulary_unknown_min_count_max_size():
    small = cn.text.WordVocabulary(CORPUS, min_count=50, max_size=100)
    assert len(small) == 100
    full = cn.text.WordVocabulary(CORPUS)
    assert small.get_vocabulary() == full.get_vocabulary()[:100]
    ids = small.encode("the zyzzyva of the")
    assert ids[1] == 1 and ids[3] == ids[0] == 2
    assert small.decode(ids) == "the [UNK] of the"
    assert small.token_to_id("zyzzyva") == 1
    rare = cn.text.WordVocabulary("a a b", min_count=2)
    assert rare.get_vocabulary() == ["", "[UNK]", "a"]


def test_word_vocabulary_from_tokens_and_case():
    vocab = cn.text.WordVocabulary([["The", "cat"], ["the", "dog"]])
    assert vocab.get_vocabulary() == ["", "[UNK]", "the", "cat", "dog"]
    np.testing.assert_array_equal(vocab.encode(["THE", "dog", "emu"]), [2, 4, 1])
    cased = cn.text.WordVocabulary("The the", lower=False)
    assert cased.get_vocabulary() == ["", "[UNK]", "The", "the"]


@pytest.mark.parametrize("make, message", [
    (lambda: cn.text.CharVocabulary(""), "CharVocabulary: the text has no tokens"),
    (lambda: cn.text.WordVocabulary(" .,; "), "WordVocabulary: the text has no tokens"),
    (lambda: cn.text.WordVocabulary([]), "WordVocabulary: the text has no tokens"),
    (lambda: cn.text.WordVocabulary("a b", min_count=0), "WordVocabulary: min_count must be >= 1"),
    (lambda: cn.text.CharVocabulary("ab", max_size=2), "CharVocabulary: max_size must be >= 3"),
    (lambda: cn.text.CharVocabulary("ab").decode([0, 5]), r"CharVocabulary.decode: ids must lie in \[0, 4\)"),
])
def test_vocabulary_value_errors(make, message):
    with pytest.raises(ValueError, match=message):
        make()


@pytest.mark.parametrize("make, message", [
    (lambda: cn.text.CharVocabulary(["a"]), "CharVocabulary: text must be a str"),
    (lambda: cn.text.WordVocabulary(3), "WordVocabulary: texts_or_tokens must be"),
    (lambda: cn.text.WordVocabulary("a").encode(3), "WordVocabulary.encode: text must be"),
    (lambda: cn.text.CharVocabulary("ab").decode([0.5]), "CharVocabulary.decode: ids must be a 1-D"),
    (lambda: cn.text.CharVocabulary("ab", min_count=1.5), "CharVocabulary: min_count must be an int"),
])
def test_vocabulary_type_errors(make, message):
    with pytest.raises(TypeError, match=message):
        make()


# ---------------------------------------------------------------- word vectors

def test_cosine_similarity_matches_formula():
    rng = np.random.default_rng(0)
    u, v = rng.standard_normal((5, 7)), rng.standard_normal((5, 7))
    expected = np.array([a @ b / np.sqrt((a @ a) * (b @ b)) for a, b in zip(u, v)])
    assert_close(cn.text.cosine_similarity(u, v), expected, np.float64)
    assert_close(cn.text.cosine_similarity(u[0], v), [u[0] @ b / np.sqrt((u[0] @ u[0]) * (b @ b))
                                                                    for b in v], np.float64)
    one = cn.text.cosine_similarity(u[1], v[1])
    assert isinstance(one, float)
    assert_close(one, expected[1], np.float64)
    assert cn.text.cosine_similarity([1, 0], [-2, 0]) == -1.0
    assert cn.text.cosine_similarity([1, 0], [0, 3]) == 0.0


@pytest.mark.parametrize("u, v, message", [
    ([0, 0], [1, 2], "cosine_similarity: u has a zero vector"),
    ([[1, 2], [0, 0]], [1, 2], "cosine_similarity: u has a zero vector"),
    ([1, 2], [1, 2, 3], "cosine_similarity: v must have 2 components"),
    (np.ones((2, 3)), np.ones((3, 3)), "cosine_similarity: u and v must have the same number of rows"),
    ([1, np.nan], [1, 2], "cosine_similarity: u must be finite"),
    ([], [], "cosine_similarity: u must not be empty"),
])
def test_cosine_similarity_errors(u, v, message):
    with pytest.raises(ValueError, match=message):
        cn.text.cosine_similarity(u, v)


# 2-D table where king − man + woman = queen exactly, and the inputs themselves
# are closer to the query than any other word (so excluding them matters).
TABLE = {"man": np.array([1.0, 0.0]), "woman": np.array([1.0, 1.0]), "king": np.array([3.0, 0.2]),
         "queen": np.array([3.0, 1.2]), "apple": np.array([-1.0, 0.3]), "pad": np.array([0.0, 0.0])}


def test_analogy_hand_built_table():
    q = TABLE["king"] - TABLE["man"] + TABLE["woman"]
    np.testing.assert_array_equal(q, TABLE["queen"])
    assert cn.text.analogy("man", "king", "woman", TABLE) == "queen"
    # without queen, the best remaining word is not one of the inputs (king is closer than apple)
    no_queen = {w: v for w, v in TABLE.items() if w != "queen"}
    assert cosine(q, TABLE["king"]) > cosine(q, TABLE["apple"])
    assert cn.text.analogy("man", "king", "woman", no_queen) == "apple"
    # a matrix with a list of words, and a vocabulary naming an embedding's rows
    words = list(TABLE)
    matrix = np.stack([TABLE[w] for w in words])
    assert cn.text.analogy("man", "king", "woman", matrix, words) == "queen"
    vocab = cn.text.WordVocabulary(["man woman king queen apple"])
    embedding = np.vstack([[5.0, 5.0], [3.0, 1.2], [TABLE[w] for w in vocab.get_vocabulary()[2:]]])
    # rows 0 and 1 (padding, unknown) are never answers, even when closest
    assert cn.text.analogy("man", "king", "woman", embedding, vocab) == "queen"


def cosine(a, b):
    return a @ b / np.sqrt((a @ a) * (b @ b))


def test_analogy_errors():
    with pytest.raises(KeyError, match="analogy: c='lady' is not in the vocabulary"):
        cn.text.analogy("man", "king", "lady", TABLE)
    with pytest.raises(ValueError, match="analogy: vectors\\['odd'\\] must have 2 components"):
        cn.text.analogy("man", "king", "woman", {**TABLE, "odd": np.ones(3)})
    with pytest.raises(ValueError, match="analogy: vectors must not be empty"):
        cn.text.analogy("man", "king", "woman", {})
    with pytest.raises(ValueError, match="analogy: vectors must be a real 2-D array"):
        cn.text.analogy("man", "king", "woman", np.ones(6), list(TABLE))
    with pytest.raises(ValueError, match="analogy: vocabulary has 2 words but vectors has 6 rows"):
        cn.text.analogy("man", "king", "woman", np.ones((6, 2)), ["man", "king"])
    with pytest.raises(ValueError, match="analogy: e_b - e_a \\+ e_c is the zero vector"):
        cn.text.analogy("man", "man", "pad", TABLE)
    with pytest.raises(ValueError, match="analogy: no candidate word"):
        cn.text.analogy("man", "king", "woman", {w: TABLE[w] for w in ("man", "king", "woman", "pad")})
    with pytest.raises(TypeError, match="analogy: vocabulary must be a list"):
        cn.text.analogy("man", "king", "woman", np.ones((6, 2)))


def test_neutralize_is_orthogonal_and_matches_formula():
    rng = np.random.default_rng(1)
    e, g = rng.standard_normal((4, 10)), rng.standard_normal(10)
    out = cn.text.neutralize(e, g)
    assert_close(out @ g, np.zeros(4), np.float64)
    for row, res in zip(e, out):
        assert_close(res, row - (row @ g) / (g @ g) * g, np.float64)
    one = cn.text.neutralize(e[0], g)
    assert one.shape == (10,)
    assert_close(one, out[0], np.float64)
    with pytest.raises(ValueError, match="neutralize: bias_axis must not be the zero vector"):
        cn.text.neutralize(e, np.zeros(10))
    with pytest.raises(ValueError, match="neutralize: bias_axis must have 10 components"):
        cn.text.neutralize(e, np.ones(3))


def course_equalize(pair, bias_axis):
    """The course notebook's equalize, line for line."""
    e_w1, e_w2 = pair
    mu = (e_w1 + e_w2) / 2
    mu_B = np.dot(mu, bias_axis) / np.sum(bias_axis ** 2) * bias_axis
    mu_orth = mu - mu_B
    e_w1B = np.dot(e_w1, bias_axis) / np.sum(bias_axis ** 2) * bias_axis
    e_w2B = np.dot(e_w2, bias_axis) / np.sum(bias_axis ** 2) * bias_axis
    corrected_e_w1B = np.sqrt(np.abs(1 - np.sum(mu_orth ** 2))) * (e_w1B - mu_B) / np.linalg.norm(e_w1 - mu_orth - mu_B)
    corrected_e_w2B = np.sqrt(np.abs(1 - np.sum(mu_orth ** 2))) * (e_w2B - mu_B) / np.linalg.norm(e_w2 - mu_orth - mu_B)
    return corrected_e_w1B + mu_orth, corrected_e_w2B + mu_orth


def test_equalize_properties():
    rng = np.random.default_rng(2)
    pair, g = rng.standard_normal((2, 8)), rng.standard_normal(8)
    pair /= np.linalg.norm(pair, axis=1, keepdims=True)
    e1, e2 = cn.text.equalize(pair, g)
    r1, r2 = course_equalize(pair, g)
    assert_close(e1, r1, np.float64)
    assert_close(e2, r2, np.float64)
    # equal and opposite projections on g, the same orthogonal part
    assert_close(e1 @ g, -(e2 @ g), np.float64)
    assert abs(e1 @ g) > 0.01
    assert_close(cn.text.neutralize(e1, g), cn.text.neutralize(e2, g), np.float64)
    # the course's printout: cosine similarities with g equal and opposite
    assert_close(cn.text.cosine_similarity(e1, g), -cn.text.cosine_similarity(e2, g), np.float64)
    # unit-norm inputs give outputs of norm <= 1; words that differ along g
    # only come out unit-norm whatever their norms (Bolukbasi et al.'s property)
    assert (np.linalg.norm([e1, e2], axis=1) - 1 <= tolerance(np.float64)["rtol"]).all()
    common = rng.standard_normal(8)
    common -= common @ g / (g @ g) * g
    common *= 0.6 / np.linalg.norm(common)
    along = 0.8 * g / np.linalg.norm(g)
    f1, f2 = cn.text.equalize([common + along * 0.3, common - along * 0.5], g)
    assert_close(np.linalg.norm([f1, f2], axis=1), [1.0, 1.0], np.float64)
    assert_close(f1 + f2, 2 * common, np.float64)


def test_equalize_errors():
    g = np.array([1.0, 0.0, 0.0])
    with pytest.raises(ValueError, match="equalize: pair_vectors must be two vectors"):
        cn.text.equalize(np.ones((3, 3)), g)
    with pytest.raises(ValueError, match="equalize: bias_axis must have 3 components"):
        cn.text.equalize(np.eye(3)[:2], np.ones(2))
    with pytest.raises(ValueError, match="equalize: pair_vectors are the same vector"):
        cn.text.equalize([[1.0, 2, 3], [1.0, 2, 3]], g)
    with pytest.raises(ValueError, match="equalize: pair_vectors must be finite"):
        cn.text.equalize([[1.0, np.inf, 3], [1.0, 2, 3]], g)
