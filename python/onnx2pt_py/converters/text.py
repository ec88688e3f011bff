"""TfIdfVectorizer over integer tokens: counts of the pool's n-grams in each
row of the input, as TF, IDF or TFIDF.

The pool is laid out as a trie when the model is converted, as onnxruntime
and the ONNX reference do; the module walks it for every start position and
skip distance at once, looking edges up with searchsorted. The i-th weight
scales the pool's i-th n-gram, as the specification and onnxruntime have
it (the reference takes it by output column instead: the two agree when
ngram_indexes is 0, 1, 2, ...).

Refused: pools of strings (torch has no string tensors); an n-gram listed
twice in the pool, which onnxruntime refuses too (the reference counts it
at its last index; the specification does not say); in IDF mode, n-grams
of different weights sharing an output column, where onnxruntime gives the
weight of whichever it found last.
"""

import collections

import torch

from ._common import Module, register, result

MODES = ("TF", "IDF", "TFIDF")


def _pool_ngrams(pool, ngram_counts, min_length, max_length):
    """(n-gram, its index among all the pool's n-grams) for the n-grams of
    the lengths asked for; ngram_counts[i] is where those of length i+1 start."""
    index = 0
    for i, start in enumerate(ngram_counts):
        length = i + 1
        end = ngram_counts[i + 1] if i + 1 < len(ngram_counts) else len(pool)
        for k in range(max(end - start, 0) // length):
            if min_length <= length <= max_length:
                yield tuple(pool[start + k * length : start + (k + 1) * length]), index
            index += 1


class OnnxTfIdfVectorizer(Module):
    """vocab: the pool's distinct tokens, sorted. The trie's nodes are
    numbered from 0 (the root); an edge from `parent` by the token at
    position t of vocab has key parent * len(vocab) + t, `keys` sorted and
    `targets` (the child nodes) aligned with them. ends[node]: the n-gram
    ending at that node (its position in `columns` and `weights`), or -1.
    column_weights: the IDF weight of each output column."""

    def __init__(self, mode, min_length, max_skip_count, size, trie, columns, weights, column_weights):
        super().__init__()
        self.mode, self.min_length, self.max_skip_count, self.size = mode, min_length, max_skip_count, size
        vocab, keys, targets, ends, self.depth = trie
        for name, values in (("vocab", vocab), ("keys", keys), ("targets", targets), ("ends", ends)):
            self.register_buffer(name, torch.tensor(values, dtype=torch.int64))
        self.register_buffer("columns", torch.tensor(columns, dtype=torch.int64))
        self.register_buffer("weights", torch.tensor(weights, dtype=torch.float32))
        self.register_buffer("column_weights", torch.tensor(column_weights, dtype=torch.float32))

    def forward(self, x):
        rows = x.reshape(1, -1) if x.dim() < 2 else x  # a sequence is one row
        counts = torch.zeros(rows.shape[0], self.columns.numel(), dtype=torch.int64, device=x.device)
        if self.depth and rows.numel():
            self._count(rows.to(torch.int64), counts)
        y = torch.zeros(rows.shape[0], self.size, dtype=torch.float32, device=x.device)
        if self.mode == "TFIDF":
            y = y.index_add(1, self.columns, counts.float() * self.weights)
        else:
            y = y.index_add(1, self.columns, counts.float())
            if self.mode == "IDF":
                y = (y > 0).float() * self.column_weights
        return y.reshape(-1) if x.dim() < 2 else y

    def _count(self, rows, counts):
        """counts[row, k]: how often the k-th n-gram occurs in the row, at
        every skip distance (unigrams once)."""
        width, vocab_size = rows.shape[1], self.vocab.numel()
        position = torch.searchsorted(self.vocab, rows).clamp(max=vocab_size - 1)
        token = torch.where(self.vocab[position] == rows, position, -1)  # -1: in no n-gram
        starts = torch.arange(width, device=rows.device)
        for distance in range(1, self.max_skip_count + 2):
            shortest = self.min_length if distance == 1 else max(self.min_length, 2)
            if shortest > self.depth:
                break
            node = torch.zeros_like(rows)
            alive = torch.ones_like(rows, dtype=torch.bool)
            for step in range(self.depth):
                at = starts + distance * step
                t = token[:, at.clamp(max=width - 1)]
                key = node * vocab_size + t
                edge = torch.searchsorted(self.keys, key).clamp(max=self.keys.numel() - 1)
                alive = alive & (at < width) & (t >= 0) & (self.keys[edge] == key)
                node = torch.where(alive, self.targets[edge], 0)
                if step + 1 >= shortest:
                    end = self.ends[node]
                    hit = alive & (end >= 0)
                    counts.scatter_add_(1, end.clamp(min=0), hit.to(torch.int64))


def _trie(ngrams):
    """(vocab, keys, targets, ends, depth) for OnnxTfIdfVectorizer."""
    vocab = sorted({token for ngram in ngrams for token in ngram})
    position = {token: i for i, token in enumerate(vocab)}
    edges, ends = {}, [-1]  # (parent, token position) -> child; the root ends no n-gram
    for k, ngram in enumerate(ngrams):
        parent = 0
        for token in ngram:
            child = edges.setdefault((parent, position[token]), len(ends))
            if child == len(ends):
                ends.append(-1)
            parent = child
        if ends[parent] != -1:
            raise ValueError(f"TfIdfVectorizer: the pool lists the n-gram {list(ngram)} twice")
        ends[parent] = k
    keys = sorted((parent * len(vocab) + t, child) for (parent, t), child in edges.items())
    depth = max((len(ngram) for ngram in ngrams), default=0)
    return vocab, [k for k, _ in keys], [c for _, c in keys], ends, depth


@register("TfIdfVectorizer", [9])
def convert_tfidf_vectorizer(node, graph):
    a = node.attributes
    if a.get("pool_strings"):
        raise NotImplementedError("TfIdfVectorizer with pool_strings: string tensors have no torch equivalent")
    pool = [int(v) for v in a.get("pool_int64s", [])]
    mode = a["mode"].decode() if isinstance(a["mode"], bytes) else a["mode"]
    if mode not in MODES:
        raise ValueError(f"TfIdfVectorizer mode {mode!r} is not one of {', '.join(MODES)}")
    min_length, max_length = int(a["min_gram_length"]), int(a["max_gram_length"])
    max_skip_count = int(a["max_skip_count"])
    ngram_counts = [int(v) for v in a["ngram_counts"]]
    ngram_indexes = [int(v) for v in a["ngram_indexes"]]
    if not ngram_indexes or min(ngram_indexes) < 0:
        raise ValueError("TfIdfVectorizer needs ngram_indexes, none negative")
    if any(not 0 <= c <= len(pool) for c in ngram_counts) or ngram_counts != sorted(ngram_counts):
        raise ValueError(f"TfIdfVectorizer ngram_counts {ngram_counts} do not split a pool of {len(pool)} tokens")
    if min_length < 1 or max_length < min_length or max_skip_count < 0:
        raise ValueError("TfIdfVectorizer needs 1 <= min_gram_length <= max_gram_length and max_skip_count >= 0")
    size = max(ngram_indexes) + 1
    weights = [float(w) for w in a.get("weights", [])] or None
    if weights is not None and len(weights) != len(ngram_indexes):
        raise ValueError(f"TfIdfVectorizer has {len(weights)} weights for {len(ngram_indexes)} ngram_indexes")

    loaded = list(_pool_ngrams(pool, ngram_counts, min_length, max_length))
    if any(index >= len(ngram_indexes) for _, index in loaded):
        raise ValueError(f"TfIdfVectorizer: the pool has n-grams beyond its {len(ngram_indexes)} ngram_indexes")
    columns = [ngram_indexes[index] for _, index in loaded]
    ngram_weights = [weights[index] if weights else 1.0 for _, index in loaded]
    column_weights = [1.0] * size
    if mode == "IDF":
        shared = collections.defaultdict(set)
        for column, weight in zip(columns, ngram_weights):
            shared[column].add(weight)
        for column, column_weight in shared.items():
            if len(column_weight) > 1:  # onnxruntime takes the weight of the n-gram it found last
                raise NotImplementedError(
                    f"TfIdfVectorizer IDF: n-grams of different weights share output column {column}"
                )
            column_weights[column] = column_weight.pop()
    module = OnnxTfIdfVectorizer(
        mode,
        min_length,
        max_skip_count,
        size,
        _trie([ngram for ngram, _ in loaded]),
        columns,
        ngram_weights,
        column_weights,
    )
    return result(module, node)
