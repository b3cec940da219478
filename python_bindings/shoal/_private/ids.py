"""Id types in the shape of Ray's (`ray.ActorID`, `ray.TaskID`, ...): immutable wrappers of the
core's binary ids (src/common/ids.h), with the same sizes and the same nil (all bytes 0xff).

ObjectRef (runtime.py) shares the class methods through IdMixin, so `ObjectRef.nil()` and
`ObjectRef.from_hex(...)` work as these do. Bad input raises: a wrong length or a non-hex digit
is a ValueError, a value of the wrong type a TypeError (Ray logs bad hex and answers nil; Shoal
refuses it).
"""
import os


def check_binary(cls, id_bytes):
    """`id_bytes` as bytes of cls's size, or TypeError/ValueError."""
    if isinstance(id_bytes, (bytearray, memoryview)):
        id_bytes = bytes(id_bytes)
    if not isinstance(id_bytes, bytes):
        raise TypeError(f"Unsupported type: {type(id_bytes)}, expected bytes")
    if len(id_bytes) != cls.size():
        raise ValueError(f"ID string needs to have length {cls.size()}, got {len(id_bytes)}")
    return id_bytes


class IdMixin:
    """Class methods shared by every id type; a class sets SIZE and stores its bytes in `_id`."""

    __slots__ = ()
    SIZE = 0

    @classmethod
    def size(cls):
        return cls.SIZE

    @classmethod
    def from_binary(cls, id_bytes):
        return cls(check_binary(cls, id_bytes))

    @classmethod
    def from_hex(cls, hex_id):
        if isinstance(hex_id, bytes):
            hex_id = hex_id.decode("ascii", errors="replace")
        if not isinstance(hex_id, str):
            raise TypeError(f"from_hex expects a str of {2 * cls.size()} hex digits, got {type(hex_id).__name__}")
        if len(hex_id) != 2 * cls.size():
            raise ValueError(f"{cls.__name__} hex string needs {2 * cls.size()} digits, got {len(hex_id)}: {hex_id!r}")
        try:
            return cls(bytes.fromhex(hex_id))
        except ValueError:
            raise ValueError(f"{cls.__name__}: not a hex string: {hex_id!r}") from None

    @classmethod
    def nil(cls):
        return cls(b"\xff" * cls.size())

    @classmethod
    def from_random(cls):
        return cls(os.urandom(cls.size()))

    def binary(self):
        return self._id

    def hex(self):
        return self._id.hex()

    def is_nil(self):
        return self._id == b"\xff" * self.size()


class BaseID(IdMixin):
    __slots__ = ("_id",)

    def __init__(self, id_bytes):
        self._id = check_binary(type(self), id_bytes)

    def __eq__(self, other):
        return type(other) is type(self) and other._id == self._id

    def __ne__(self, other):
        return not self == other

    def __hash__(self):
        return hash((type(self).__name__, self._id))

    def __repr__(self):
        return f"{type(self).__name__}({self.hex()})"

    __str__ = __repr__

    def __reduce__(self):
        return (type(self), (self._id,))


class ActorID(BaseID):
    SIZE = 16

    def job_id(self):
        return JobID(self._id[-JobID.SIZE:])


class TaskID(BaseID):
    SIZE = 24

    def actor_id(self):
        return ActorID(self._id[-ActorID.SIZE:])

    def job_id(self):
        return self.actor_id().job_id()


class JobID(BaseID):
    SIZE = 4

    @classmethod
    def from_int(cls, value):
        if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value < 2 ** 32:
            raise ValueError(f"a job id is an integer in [0, 2**32), got {value!r}")
        return cls(value.to_bytes(4, "little"))

    def int(self):
        return int.from_bytes(self._id, "little")


class NodeID(BaseID):
    SIZE = 28


class WorkerID(BaseID):
    SIZE = 28
