"""Sampling by attribute domain, from a batch-schema dataset's ``attrs`` table.

A *domain* is one (attribute column k, value v) pair of the selected attributes, with id ``2 * k + v`` (the id
L2M-GAN's ``domain_index`` uses). A sample with K attributes belongs to K domains at once, one per column.

* ``BalancedDomainSampler``: the StarGAN v2 / L2M-GAN release's balanced sampler. Each draw picks a domain
  uniformly, then a sample uniformly among that domain's members, so every domain is drawn equally often
  whatever the data set's frequencies. It yields ``(index, domain id)`` pairs: wrap the dataset in
  ``DomainTagged`` and the batches carry the drawn domain as ``batch["domain"]``.
* ``DomainBatches``: an endless source of full batches of one domain's items (e.g. a discriminator's real
  images), from successive seeded permutations of the domain.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch.utils.data import Dataset, Sampler, default_collate

from datamodules.cache import config_hash


class EmptyDomainError(ValueError):
    """A domain (attribute, value) has no image in the data set, so it cannot be sampled."""


def derive_seed(seed: int, purpose: str) -> int:
    """A seed for one use (``purpose``) of the run seed ``seed``: independent streams for independent draws."""
    return int(config_hash({"seed": int(seed), "purpose": purpose}, length=15), 16)


def dataset_attrs(dataset: Dataset) -> torch.Tensor:
    """(N, K) float {0, 1} attribute table of a batch-schema dataset; reads ``dataset.attrs`` when it has one."""
    attrs = getattr(dataset, "attrs", None)
    if isinstance(attrs, torch.Tensor) and attrs.ndim == 2 and attrs.shape[0] == len(dataset):
        return attrs.float().round()
    return torch.stack([dataset[i]["attrs"] for i in range(len(dataset))]).float().round()


def domain_id(column: int, value: int) -> int:
    """Id of domain (attribute column ``column``, value ``value`` in {0, 1}): ``2 * column + value``."""
    return 2 * int(column) + int(value)


def domain_name(column: int, value: int, attribute_names: Sequence[str] | None = None) -> str:
    """``"Eyeglasses=1"`` (or ``"attribute 2=1"`` without names)."""
    name = attribute_names[column] if attribute_names is not None else f"attribute {column}"
    return f"{name}={int(value)}"


def domain_members(attrs: torch.Tensor, column: int, value: int,
                   attribute_names: Sequence[str] | None = None) -> torch.Tensor:
    """(M,) int64 indices of the rows of ``attrs`` (N, K) whose column ``column`` equals ``value``.

    Raises ``EmptyDomainError`` naming the domain when there are none.
    """
    members = torch.nonzero(attrs[:, column].round() == value).squeeze(1)
    if members.numel() == 0:
        raise EmptyDomainError(f"domain {domain_name(column, value, attribute_names)} has no images among the "
                               f"{attrs.shape[0]} of the training split, so it cannot be sampled; choose other "
                               "attributes or a data set that has both values")
    return members


class BalancedDomainSampler(Sampler[tuple[int, int]]):
    """Every domain equally often: each draw picks one of the 2K domains uniformly, then one of its members.

    attrs: (N, K) {0, 1} table of the dataset (``dataset_attrs``); num_samples: draws per pass (default N, as
    the release's ``WeightedRandomSampler(weights, len(weights))``); seed: the draws' generator, kept across
    passes (each pass draws anew, the sequence of passes is fixed by the seed); attribute_names: the columns'
    names, for error messages. Yields ``(dataset index, domain id)``; raises ``EmptyDomainError`` if a domain
    has no member.
    """

    def __init__(self, attrs: torch.Tensor, num_samples: int | None = None, seed: int = 0,
                 attribute_names: Sequence[str] | None = None) -> None:
        if attrs.ndim != 2 or attrs.shape[1] == 0:
            raise ValueError(f"attrs must be (N, K) with K >= 1, got {tuple(attrs.shape)}")
        self.domains = [(k, v) for k in range(attrs.shape[1]) for v in (0, 1)]
        self.domain_ids = torch.tensor([domain_id(k, v) for k, v in self.domains])
        self.members = [domain_members(attrs, k, v, attribute_names) for k, v in self.domains]
        self.num_samples = int(num_samples) if num_samples is not None else attrs.shape[0]
        if self.num_samples < 1:
            raise ValueError(f"num_samples must be >= 1, got {self.num_samples}")
        self.generator = torch.Generator().manual_seed(int(seed))

    def draw(self, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` draws: (n,) dataset indices and (n,) the domain ids they were drawn for."""
        choice = torch.randint(len(self.domains), (n,), generator=self.generator)
        index = torch.empty(n, dtype=torch.long)
        for j, members in enumerate(self.members):
            rows = torch.nonzero(choice == j).squeeze(1)
            if rows.numel():
                index[rows] = members[torch.randint(members.numel(), (rows.numel(),), generator=self.generator)]
        return index, self.domain_ids[choice]

    def __iter__(self) -> Iterator[tuple[int, int]]:
        index, domain = self.draw(self.num_samples)
        return iter(zip(index.tolist(), domain.tolist()))

    def __len__(self) -> int:
        return self.num_samples


class DomainTagged(Dataset):
    """A batch-schema dataset indexed by ``(index, domain id)`` pairs: the item plus ``"domain"`` (int64).

    An int key returns the wrapped item unchanged; ``attrs`` is the wrapped dataset's table.
    """

    def __init__(self, dataset: Dataset) -> None:
        self.dataset = dataset

    @property
    def attrs(self) -> torch.Tensor:
        return dataset_attrs(self.dataset)

    def __len__(self) -> int:
        return len(self.dataset)

    def __getitem__(self, key: int | tuple[int, int]) -> dict[str, torch.Tensor]:
        if isinstance(key, int):
            return self.dataset[key]
        index, domain = key
        return {**self.dataset[int(index)], "domain": torch.tensor(int(domain), dtype=torch.long)}


class DomainBatches:
    """Endless full batches of the items of one domain (attribute column ``column`` = ``value``).

    Indices are taken in order from seeded permutations of the domain's members, a new permutation appended
    whenever fewer than ``batch_size`` remain, so each pass over the domain is reshuffled, every member comes
    once per pass and every batch is full (a domain smaller than a batch spans several passes). ``next(source)``
    is a collated batch-schema dict on the CPU: image (B, 3, H, W) in [-1, 1], attrs (B, K), identity, index.
    Raises ``EmptyDomainError`` naming the domain if it has no member.
    """

    def __init__(self, dataset: Dataset, column: int, value: int, batch_size: int, seed: int = 0,
                 attribute_names: Sequence[str] | None = None) -> None:
        if batch_size < 1:
            raise ValueError(f"batch_size must be >= 1, got {batch_size}")
        self.dataset = dataset
        self.column, self.value, self.batch_size = int(column), int(value), int(batch_size)
        self.members = domain_members(dataset_attrs(dataset), self.column, self.value, attribute_names)
        self.generator = torch.Generator().manual_seed(int(seed))
        self._queue = torch.empty(0, dtype=torch.long)

    def next_indices(self) -> torch.Tensor:
        """(batch_size,) dataset indices of the next batch."""
        while self._queue.numel() < self.batch_size:
            perm = torch.randperm(self.members.numel(), generator=self.generator)
            self._queue = torch.cat([self._queue, self.members[perm]])
        out, self._queue = self._queue[: self.batch_size], self._queue[self.batch_size:]
        return out

    def __iter__(self) -> DomainBatches:
        return self

    def __next__(self) -> dict[str, torch.Tensor]:
        return default_collate([self.dataset[int(i)] for i in self.next_indices()])

    def state_dict(self) -> dict[str, torch.Tensor]:
        """The generator's state and the indices left in the current pass (checkpointed by the method)."""
        return {"generator": self.generator.get_state(), "queue": self._queue.clone()}

    def load_state_dict(self, state: dict[str, torch.Tensor]) -> None:
        self.generator.set_state(state["generator"])
        self._queue = state["queue"].clone().long()
