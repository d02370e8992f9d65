"""Read an untrusted weights file in a short-lived child process, so that no file can crash, freeze
or flood the process that serves everyone.

`torch.load(weights_only=True)` runs no code, but its unpickler still builds whatever the pickle
describes: a tuple nested a million deep (hashing it overflows the C stack), a dict key whose
hash never ends, a 3 GB `bytearray` from 639 bytes. So every file not shipped with the app is
read by `checkpoint.read_checkpoint` in a process of its own, one file per process, forked from
a fork server (`serve_forks`): one single-threaded process that imported PyTorch once, so a read
costs a fork, not a 3 s import.

- an address-space limit (what the child has mapped once ready, plus `Limits.memory(size)`),
  a CPU-time limit, no core file, and a wall-clock timeout after which it is killed;
- it hands back the tensors as a safetensors file (a format that cannot run or nest anything,
  read here by its own parser) and the checked metadata (`FileMetadata`) as JSON: the parent
  never unpickles anything the file wrote;
- at most `PARSES` files are read at once, so a burst of uploads cannot start processes without
  bound; a child that dies, hits a limit or overruns says which, as a `CheckpointError`.

Not `multiprocessing`'s forkserver: its children re-run the parent's `__main__`, which in a
Streamlit server is the page script.
"""
import ctypes
import itertools
import json
import os
import queue
import resource
import select
import signal
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from .checkpoint import Checkpoint, CheckpointError, open_weights, read_checkpoint
from .file_metadata import MAX_FIELD_CHARS, FileMetadata

PARSES = threading.BoundedSemaphore(2)       # files read at once, process-wide
STATUS_BYTES = 8 * MAX_FIELD_CHARS           # what a child may say beside its tensors: its checked metadata
SHARED_MEMORY = "/dev/shm"                   # work files in memory, where there is room (`_work_root`)
READY = b"ready\n"                          # the fork server's word that it has imported what it needs
START_SECONDS = 120                          # for the fork server to get ready (imports, on a busy machine)
PACKAGE_ROOT = str(Path(__file__).resolve().parents[1])
LIBC = ctypes.CDLL(None)                     # prctl: a child dies with the fork server (Linux)
PR_SET_PDEATHSIG = 1


@dataclass(frozen=True)
class Limits:
    seconds: float = 30.0           # wall clock, then the child is killed
    cpu_seconds: int = 20           # CPU time (RLIMIT_CPU): below the wall clock, so a busy child hits it first
    base_bytes: int = 768 << 20     # address space beyond what the child has mapped when ready ...
    bytes_per_byte: int = 4         # ... plus this many bytes per byte of the file (tensors, their copies, the output)
    wait_seconds: float = 60.0      # for a free slot (`PARSES`), then "busy"

    def memory(self, size: int) -> int:
        return self.base_bytes + self.bytes_per_byte * size


LIMITS = Limits()


class ForkServer:
    """The fork server, seen from the parent: jobs (and a job's kill) go to its stdin as JSON lines;
    it answers "<job> started <pid>" when a job's child starts and "<job> exit <code>" when it ends
    (read by one listening thread, handed to the job's caller). It kills and reaps its own
    children, so no pid is ever signalled after its reuse."""

    def __init__(self):
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [PACKAGE_ROOT, os.environ.get("PYTHONPATH")]))}
        self.process = subprocess.Popen([sys.executable, "-c", f"from {__name__} import serve_forks; serve_forks()"],
                                        stdin=subprocess.PIPE, stdout=subprocess.PIPE, env=env, cwd=PACKAGE_ROOT)
        self.ready, self.replies, self.jobs, self.writing = threading.Event(), {}, itertools.count(), threading.Lock()
        self.listener = threading.Thread(target=self._listen, daemon=True)
        self.listener.start()

    def alive(self) -> bool:
        return self.process.poll() is None and self.listener.is_alive()

    def _send(self, message: dict) -> None:
        with self.writing:
            self.process.stdin.write(json.dumps(message).encode() + b"\n")
            self.process.stdin.flush()

    def _wait_ready(self) -> None:
        deadline = time.monotonic() + START_SECONDS
        while not self.ready.wait(0.25):
            if not self.alive() or time.monotonic() > deadline:
                raise OSError("the fork server did not start")

    def run(self, path: Path, work: Path, limits: Limits) -> int:
        """The exit code of a child that read `path` into `work`; a CheckpointError on a timeout."""
        job, replies = next(self.jobs), queue.Queue()
        self.replies[job] = replies
        try:
            self._wait_ready()
            self._send({"job": job, "path": str(path), "work": str(work), "limits": asdict(limits)})
            if replies.get(timeout=START_SECONDS) is None:          # its pid, once started
                raise OSError("the fork server ended")
            try:
                code = replies.get(timeout=limits.seconds)
            except queue.Empty:          # still reading: a crafted file (a pickle whose hashing never ends)
                self._send({"kill": job})
                replies.get(timeout=START_SECONDS)
                raise CheckpointError(f"refused: reading this file took over {limits.seconds:.0f} s, far longer "
                                      "than any weights file of its size takes (a file crafted to stall the reader)")
            if code is None:
                raise OSError("the fork server ended")
            return code
        except (queue.Empty, OSError) as e:     # the fork server itself is gone
            raise CheckpointError("the server could not start a reader for the file; please try again") from e
        finally:
            self.replies.pop(job)

    def _listen(self) -> None:
        for line in self.process.stdout:
            if line == READY:
                self.ready.set()
                continue
            try:
                job, _, value = line.split()
                replies = self.replies.get(int(job))      # None: its caller has stopped waiting
                if replies is not None:
                    replies.put(int(value))
            except ValueError:                           # not a reply: ignore it
                continue
        for replies in list(self.replies.values()):     # the fork server is gone: so are its children
            replies.put(None)


_server: list[ForkServer] = []
_server_lock = threading.Lock()


def read_isolated(source: str | os.PathLike | bytes, limits: Limits = LIMITS) -> Checkpoint:
    """`checkpoint.read_checkpoint(source)`, computed in a child process under `limits`."""
    if not PARSES.acquire(timeout=limits.wait_seconds):
        raise CheckpointError("the server is busy reading other weights files; please try again in a minute")
    try:
        if not isinstance(source, (bytes, bytearray, memoryview)):
            open_weights(source).close()            # a missing file is named as the caller gave it
        size = len(source) if isinstance(source, (bytes, bytearray, memoryview)) else os.stat(source).st_size
        with tempfile.TemporaryDirectory(prefix="attention-lens-", dir=_work_root(size)) as folder:
            work = Path(folder)
            if isinstance(source, (bytes, bytearray, memoryview)):
                path = work / "upload"
                path.write_bytes(source)
            else:
                path = Path(source)
            return _read(path.resolve(), work, limits)
    except OSError as e:                            # no room for the work files, most likely
        raise CheckpointError(f"the server could not read the file ({e.strerror or e}); please try again") from e
    finally:
        PARSES.release()


def _work_root(size: int) -> str | None:
    """/dev/shm where it is writable with room for the upload and its tensors twice over (a
    container's is often 64 MB), else the system's temporary folder."""
    try:
        shm = os.statvfs(SHARED_MEMORY)
        return SHARED_MEMORY if os.access(SHARED_MEMORY, os.W_OK) and shm.f_bavail * shm.f_frsize > 4 * size else None
    except OSError:
        return None


def warm() -> ForkServer:
    """The fork server, started now if it is not running (it imports PyTorch: seconds)."""
    with _server_lock:
        if not (_server and _server[0].alive()):
            _server[:] = [ForkServer()]
        return _server[0]


def _read(path: Path, work: Path, limits: Limits) -> Checkpoint:
    code = warm().run(path, work, limits)
    status = _status(work / "status.json")
    if code != 0 or status is None:
        raise CheckpointError(_death(code, limits))
    if "error" in status:
        raise CheckpointError(status["error"])
    try:
        tensors = load_file(work / "tensors.safetensors")            # stored as "0", "1", ...
        names = json.loads((work / "names.json").read_text())
        return Checkpoint({name: tensors[str(i)] for i, name in enumerate(names)}, status["metadata"])
    except Exception as e:          # what the child wrote is its own, but never trusted to parse
        raise CheckpointError(f"refused: the reader's output could not be read ({type(e).__name__})") from e


def _status(path: Path) -> dict | None:
    """What the child said, or None where it said nothing (or more than a status can hold)."""
    try:
        if path.stat().st_size <= STATUS_BYTES:
            return json.loads(path.read_text())
    except (OSError, ValueError):
        pass
    return None


def _death(exitcode: int, limits: Limits) -> str:
    """Why a child that left no status stopped, from its exit code (negative: the signal)."""
    causes = {-signal.SIGSEGV: "it crashed the reader (a file crafted to overflow its stack)",
              -signal.SIGXCPU: f"reading it used more than {limits.cpu_seconds} s of processor time",
              -signal.SIGKILL: "the reader was stopped for using too much memory",
              -signal.SIGABRT: "the reader ran out of memory"}
    return f"refused: {causes.get(exitcode, f'the reader stopped (exit code {exitcode})')}; nothing of it was used"


def _child(path: str, work: str, limits: Limits) -> None:
    """In the child: set the limits, read the file, write its tensors and a status into `work`."""
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    resource.setrlimit(resource.RLIMIT_CPU, (limits.cpu_seconds, limits.cpu_seconds + 2))   # SIGXCPU, then SIGKILL
    size = os.stat(path).st_size if os.path.exists(path) else 0
    memory = _mapped_bytes() + limits.memory(size)
    resource.setrlimit(resource.RLIMIT_AS, (memory, memory))
    torch.set_num_threads(1)
    out = Path(work)
    try:
        checkpoint = read_checkpoint(path)
        metadata = FileMetadata.read(checkpoint.metadata).to_strings()
        save_file({str(i): t for i, t in enumerate(_own_storage(checkpoint.state_dict).values())},
                  out / "tensors.safetensors")              # by position: a file's names may be anything
        (out / "names.json").write_text(json.dumps(list(checkpoint.state_dict)))
        status = {"metadata": metadata}
    except CheckpointError as e:
        status = {"error": str(e)}
    except MemoryError:
        status = {"error": f"refused: reading this {size / 1e6:,.1f} MB file needs more than "
                           f"{limits.memory(size) / 1e6:,.0f} MB of memory (a file crafted to inflate)"}
    except RecursionError:
        status = {"error": "refused: this file nests its contents too deeply to be a weights file"}
    except Exception as e:      # any other failure to read an untrusted file is the file's fault
        status = {"error": f"refused: this file could not be read ({type(e).__name__})"}
    (out / "status.json").write_text(json.dumps(status))


def _own_storage(state_dict: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Every tensor contiguous and in storage of its own, as safetensors stores them (the file's
    totals were checked by `read_checkpoint`, so the copies are bounded by its size)."""
    seen, out = set(), {}
    for name, tensor in state_dict.items():
        pointer = tensor.untyped_storage().data_ptr()
        out[name] = tensor.contiguous() if pointer not in seen and tensor.is_contiguous() else tensor.clone(
            memory_format=torch.contiguous_format)
        seen.add(pointer)
    return out


def _mapped_bytes() -> int:
    """This process's address space now (VmSize), in bytes."""
    with open("/proc/self/status") as f:
        line = next(line for line in f if line.startswith("VmSize:"))
    return int(line.split()[1]) * 1024


def serve_forks() -> None:
    """The fork server's life: say it is ready, then fork a child for each job line on stdin, and
    report when each starts and ends. Single-threaded, so every fork is safe; when its parent goes
    (stdin closes), it kills its children and ends."""
    replies = os.fdopen(os.dup(1), "wb", buffering=0)
    os.dup2(2, 1)                                   # anything printed goes to stderr, not into the replies
    replies.write(READY)
    running, pending = {}, b""
    while True:
        if select.select([0], [], [], 0.02 if running else None)[0]:
            chunk = os.read(0, 1 << 16)
            if not chunk:
                break
            *lines, pending = (pending + chunk).split(b"\n")
            for line in lines:
                job = json.loads(line)
                if "kill" in job:
                    for pid in [p for p, j in running.items() if j == job["kill"]]:
                        os.kill(pid, signal.SIGKILL)         # still ours: reaped only below
                    continue
                pid = os.fork()
                if pid == 0:                        # the child: one file, then gone, whatever happens
                    code = 1
                    try:
                        os.close(0)
                        replies.close()
                        LIBC.prctl(PR_SET_PDEATHSIG, signal.SIGKILL)    # gone with the fork server
                        _child(job["path"], job["work"], Limits(**job["limits"]))
                        code = 0
                    finally:
                        os._exit(code)
                running[pid] = job["job"]
                replies.write(f"{job['job']} started {pid}\n".encode())
        while running and (ended := os.waitpid(-1, os.WNOHANG))[0]:
            replies.write(f"{running.pop(ended[0])} exit {os.waitstatus_to_exitcode(ended[1])}\n".encode())
    for pid in running:
        os.kill(pid, signal.SIGKILL)
