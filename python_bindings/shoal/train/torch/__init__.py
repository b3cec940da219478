"""TorchTrainer and its helpers (Ray's ray.train.torch): torch.distributed set up on every
worker before the training function runs (gloo on CPU, NCCL with use_gpu; MASTER_ADDR and
MASTER_PORT chosen by Shoal on rank 0's node), `prepare_model` (DistributedDataParallel) and
`prepare_data_loader` (a DistributedSampler). torch is imported only when used."""
import datetime
import os
import socket

from shoal.train import _session
from shoal.train.trainer import DataParallelTrainer


class TorchConfig:
    """How torch.distributed is set up: `backend` "gloo" or "nccl" (default: nccl with GPUs,
    else gloo), `init_method` "tcp" or "env", `timeout_s` for its collectives."""

    def __init__(self, backend=None, init_method="env", timeout_s=1800):
        if backend not in (None, "gloo", "nccl"):
            raise ValueError(f"TorchConfig(backend={backend!r}): must be 'gloo' or 'nccl'")
        if init_method not in ("env", "tcp"):
            raise ValueError(f"TorchConfig(init_method={init_method!r}): must be 'env' or 'tcp'")
        if not isinstance(timeout_s, (int, float)) or timeout_s <= 0:
            raise ValueError(f"TorchConfig(timeout_s={timeout_s!r}): must be a number of seconds above 0")
        self.backend = backend
        self.init_method = init_method
        self.timeout_s = timeout_s


def _free_port():
    with socket.socket() as s:
        s.bind(("", 0))
        return s.getsockname()[1]


def _setup_process_group(backend, init_method, address, port, rank, world, local_rank, local_world, node_rank,
                         timeout_s):
    import torch
    import torch.distributed as dist
    os.environ.update(MASTER_ADDR=address, MASTER_PORT=str(port), RANK=str(rank), WORLD_SIZE=str(world),
                      LOCAL_RANK=str(local_rank), LOCAL_WORLD_SIZE=str(local_world), NODE_RANK=str(node_rank))
    if backend == "nccl":
        torch.cuda.set_device(_device_index())
    url = "env://" if init_method == "env" else f"tcp://{address}:{port}"
    dist.init_process_group(backend=backend, init_method=url, rank=rank, world_size=world,
                            timeout=datetime.timedelta(seconds=timeout_s))
    return True


def _teardown_process_group():
    import torch.distributed as dist
    if dist.is_initialized():
        dist.destroy_process_group()
    return True


class _TorchBackend:
    def __init__(self, config, use_gpu):
        self.backend = config.backend or ("nccl" if use_gpu else "gloo")
        self.config = config

    def on_start(self, group):
        address = group.infos[0]["ip"]
        port = group._gather([group.workers[0].execute.remote(_free_port)])[0]  # on rank 0's node
        args = [(self.backend, self.config.init_method, address, port, info["world_rank"], info["world_size"],
                 info["local_rank"], info["local_world_size"], info["node_rank"], self.config.timeout_s)
                for info in group.infos]
        group.execute_each(_setup_process_group, args)

    def on_shutdown(self, group):
        group.execute(_teardown_process_group)


class TorchTrainer(DataParallelTrainer):
    """A DataParallelTrainer whose workers form one torch.distributed process group."""

    def __init__(self, train_loop_per_worker, *, train_loop_config=None, torch_config=None, scaling_config=None,
                 run_config=None, datasets=None, dataset_config=None, resume_from_checkpoint=None, metadata=None):
        if torch_config is not None and not isinstance(torch_config, TorchConfig):
            raise TypeError(f"torch_config must be a shoal.train.torch.TorchConfig, got {type(torch_config).__name__}")
        self.torch_config = torch_config or TorchConfig()
        super().__init__(train_loop_per_worker, train_loop_config=train_loop_config, scaling_config=scaling_config,
                         run_config=run_config, datasets=datasets, dataset_config=dataset_config,
                         resume_from_checkpoint=resume_from_checkpoint, metadata=metadata)

    def _backend(self):
        return _TorchBackend(self.torch_config, self.scaling_config.use_gpu)


def _device_index():
    """This worker's CUDA device: the raylet makes its assigned GPUs the only visible ones, so
    the first visible device (or the local rank's when several are visible)."""
    import torch
    count = torch.cuda.device_count()
    if count <= 1:
        return 0
    session = _session.current()
    local = session.context.get_local_rank() if session is not None else 0
    return local % count


def get_device():
    """The device this worker trains on: its GPU when it holds one, else the CPU."""
    import torch
    import shoal
    if torch.cuda.is_available() and shoal.get_gpu_ids():
        return torch.device("cuda", _device_index())
    return torch.device("cpu")


def get_devices():
    return [get_device()]


def prepare_model(model, move_to_device=True, parallel_strategy="ddp", parallel_strategy_kwargs=None):
    """The model on this worker's device, wrapped in DistributedDataParallel when the run has
    more than one worker (parallel_strategy "ddp"; None leaves it unwrapped)."""
    import torch
    from torch.nn.parallel import DistributedDataParallel
    if parallel_strategy not in ("ddp", None):
        raise ValueError(f"prepare_model(parallel_strategy={parallel_strategy!r}): Shoal supports 'ddp' or None")
    device = get_device()
    if move_to_device:
        model = model.to(device)
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if parallel_strategy == "ddp" and world > 1:
        kwargs = dict(parallel_strategy_kwargs or {})
        if device.type == "cuda":
            kwargs.setdefault("device_ids", [device])
            kwargs.setdefault("output_device", device)
        model = DistributedDataParallel(model, **kwargs)
    return model


class _DeviceLoader:
    """Iterates a DataLoader with every tensor of a batch moved to the worker's device."""

    def __init__(self, loader, device, non_blocking=True):
        self._loader = loader
        self._device = device
        self._non_blocking = non_blocking

    def __len__(self):
        return len(self._loader)

    def __getattr__(self, name):
        return getattr(self._loader, name)

    def _move(self, item):
        import torch
        if isinstance(item, torch.Tensor):
            return item.to(self._device, non_blocking=self._non_blocking)
        if isinstance(item, (list, tuple)):
            return type(item)(self._move(i) for i in item)
        if isinstance(item, dict):
            return {k: self._move(v) for k, v in item.items()}
        return item

    def __iter__(self):
        for batch in self._loader:
            yield self._move(batch)


def prepare_data_loader(data_loader, add_dist_sampler=True, move_to_device=True, auto_transfer=True):
    """The DataLoader rebuilt with a DistributedSampler (each worker gets its share; shuffled
    when the original shuffled) and, with move_to_device, batches moved to the worker's device.
    Ray's auto_transfer (copy on a side stream) is how the move is made here: non_blocking
    copies; auto_transfer=False makes them blocking."""
    import torch
    from torch.utils.data import DataLoader, DistributedSampler, RandomSampler
    world = torch.distributed.get_world_size() if torch.distributed.is_initialized() else 1
    if add_dist_sampler and world > 1 and not isinstance(data_loader.sampler, DistributedSampler):
        rank = torch.distributed.get_rank()
        shuffle = isinstance(data_loader.sampler, RandomSampler)
        sampler = DistributedSampler(data_loader.dataset, num_replicas=world, rank=rank, shuffle=shuffle)
        data_loader = DataLoader(data_loader.dataset, batch_size=data_loader.batch_size, sampler=sampler,
                                 num_workers=data_loader.num_workers, collate_fn=data_loader.collate_fn,
                                 pin_memory=data_loader.pin_memory, drop_last=data_loader.drop_last,
                                 timeout=data_loader.timeout, worker_init_fn=data_loader.worker_init_fn)
    device = get_device()
    if move_to_device and device.type != "cpu":
        return _DeviceLoader(data_loader, device, non_blocking=auto_transfer)
    return data_loader


def enable_reproducibility(seed=0):
    import random
    import numpy as np
    import torch
    torch.manual_seed(seed)
    random.seed(seed)
    np.random.seed(seed)
    torch.use_deterministic_algorithms(True)


def backward(tensor):
    tensor.backward()


__all__ = ["TorchTrainer", "TorchConfig", "get_device", "get_devices", "prepare_model", "prepare_data_loader",
           "enable_reproducibility", "backward"]
