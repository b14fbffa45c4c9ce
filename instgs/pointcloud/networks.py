"""The four networks of the track behind one interface, and the one factory.

=========  ==========================================  ========================================
name       paper                                       package
=========  ==========================================  ========================================
hais       HAIS, Chen et al. ICCV 2021 (seed 000)       :mod:`instgs.pointcloud.hais`
ssen       SSEN, Spatial Semantic Embedding (seed 003)  :mod:`instgs.pointcloud.ssen`
queryis    3D-QueryIS, query-based (seed 001)           :mod:`instgs.pointcloud.queryis`
mpnet      MPNet, memory-augmented prototypes (002)     :mod:`instgs.pointcloud.mpnet`
=========  ==========================================  ========================================

Each network is a module with ``loss(batch, progress) -> (loss, logs)`` (the trainer's
contract), a config dataclass, a ``collate(scenes, cfg) -> batch`` and a
``predict(model, scene) -> prediction`` (``instances``, ``semantic``, ``timings``) with its
named ``STAGES``. :func:`build_network` is the only place that constructs one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

import torch

from instgs.core.checks import InputError

__all__ = ["NETWORKS", "Network", "NetworkSpec", "network_spec", "build_network",
           "config_class"]

#: Names of the networks, in the order of the docs.
NETWORKS = ("hais", "ssen", "queryis", "mpnet")
Network = Literal["hais", "ssen", "queryis", "mpnet"]


@dataclass(frozen=True)
class NetworkSpec:
    """How the trainer, the CLI and the benchmark drive one network.

    Attributes:
        name: one of :data:`NETWORKS`.
        config_cls: its config dataclass.
        model_cls: its ``nn.Module`` (constructed as ``model_cls(cfg)``).
        collate: ``(list of PointScene, cfg) -> batch`` for ``model.loss``.
        predict: ``(model, PointScene) -> prediction`` with ``instances``, ``semantic``
            ([N] int64 or None), ``timings`` (seconds per stage).
        stages: names of the timed inference stages (``total`` last).
        block_sampler: True when training samples crops (MPNet's blocks) rather than scenes.
    """

    name: str
    config_cls: type
    model_cls: type
    collate: Callable[[list, Any], Any]
    predict: Callable[[torch.nn.Module, Any], Any]
    stages: tuple[str, ...]
    block_sampler: bool = False


def _known() -> str:
    return f"choose one of {list(NETWORKS)}"


def network_spec(name: str) -> NetworkSpec:
    """The :class:`NetworkSpec` of network ``name``.

    Raises:
        InputError: unknown name (lists the choices).
    """
    if name == "hais":
        from instgs.pointcloud import hais

        return NetworkSpec("hais", hais.HAISConfig, hais.HAIS, hais.collate_scenes,
                           hais.predict, hais.STAGES)
    if name == "ssen":
        from instgs.pointcloud import ssen
        from instgs.pointcloud.batch import collate_scenes

        return NetworkSpec("ssen", ssen.SSENConfig, ssen.SSEN, collate_scenes, ssen.predict,
                           ssen.STAGES)
    if name == "queryis":
        from instgs.pointcloud import queryis
        from instgs.pointcloud.batch import collate_scenes

        return NetworkSpec("queryis", queryis.QueryISConfig, queryis.QueryIS, collate_scenes,
                           queryis.predict, queryis.STAGES)
    if name == "mpnet":
        from instgs.pointcloud import mpnet

        return NetworkSpec("mpnet", mpnet.MPNetConfig, mpnet.MPNet, mpnet.collate_blocks,
                           mpnet.predict, mpnet.STAGES, block_sampler=True)
    raise InputError(f"unknown network {name!r}", None, _known())


def config_class(name: str) -> type:
    """The config dataclass of network ``name`` (InputError if unknown)."""
    return network_spec(name).config_cls


def build_network(network: str, cfg: Any) -> torch.nn.Module:
    """The one factory of point-cloud networks: ``network`` name + its config -> module.

    Args:
        network: one of :data:`NETWORKS`.
        cfg: an instance of that network's config class.

    Returns:
        the untrained ``nn.Module``.

    Raises:
        InputError: unknown network (lists the choices), or a config of another network.
    """
    spec = network_spec(network)
    if not isinstance(cfg, spec.config_cls):
        raise InputError(f"network {network!r} needs a {spec.config_cls.__name__}, got a "
                         f"{type(cfg).__name__}", None, "pass that network's section")
    return spec.model_cls(cfg)
