"""Load test: N sessions at once against `streamlit run serve.py`, each uploading its own image.

    python -m bench.load_test [--sessions 1 4 8 16] [--rounds 5] [--replicas 1]

The client is light, no browser: each session is one websocket speaking Streamlit's own protocol
(protobuf BackMsg / ForwardMsg on /_stcore/stream; the file goes by HTTP PUT to the URL the server
hands out, as the front end does), every session in this one asyncio process, which runs at nice
+10 once the servers have started, so they get the CPU first (both CPU totals are printed).
Per round, for each N (ascending, then descending in the next round): N new sessions open the
default page at once; each then uploads at once its own image, one no session has shown before (a
generated shape, 160 px PNG): upload -> the script run finished; then N more new sessions each upload
an image that another of the first N uploaded: these must be served from the shared cache, with
no new forward pass. Every page's top-5 predictions are checked against an offline run in this
process (`lens.inspect_image(pretrained.load(pretrained.DEFAULT_MODEL), bytes)`) and its image
caption against its own file name: a page that shows another session's image or predictions is
cross-talk. Ideal for N: max(1, N / cores) x the single-session time (N = 1's median). Target
(issue #13) at N = 16: no errors, no cross-talk, p95 <= 2x ideal. Server RSS: the peak resident
memory (VmHWM, reset before each N) of the servers and their children, summed.
`--replicas R` starts R servers and spreads the sessions over them round robin, each session kept
on its server (a load balancer with sticky sessions); a session repeating an image goes to the
server that computed it.
"""
import argparse
import asyncio
import io
import os
import re
import statistics
import time
import urllib.request
import uuid
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path

import pyarrow as pa
import websockets
from PIL import Image
from streamlit.proto.Alert_pb2 import Alert
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

import lens
import pretrained
from bench.server import streamlit
from training import shapes

TIMEOUT_S = 600            # one page, however loaded the machine
TOLERANCE = 1e-3           # percentage points: the same model on the same bytes in another process
CLIENT_NICE = 10


@dataclass
class Page:
    seconds: float
    caption: str = ""                                   # the header's line on the model input: names the image
    predictions: list[tuple[str, float]] = field(default_factory=list)   # (class, percent) as shown
    problems: list[str] = field(default_factory=list)   # error messages and exceptions on the page


def read_page(elements: list, seconds: float) -> Page:
    page = Page(seconds)
    for e in elements:
        kind = e.WhichOneof("type")
        if kind == "markdown" and not page.caption and "as the model sees it" in e.markdown.body:
            # the header: "**top class** p% · <image>, as the model sees it (...) · <model>"
            page.caption = re.sub(r"\\(.)", r"\1", e.markdown.body).split(" · ", 1)[-1]
        elif kind == "dataframe" and not page.predictions:
            table = pa.ipc.open_stream(e.dataframe.arrow_data.data).read_all()
            page.predictions = list(zip(table.column("class").to_pylist(), table.column("probability").to_pylist()))
        elif kind == "exception" or (kind == "alert" and e.alert.format == Alert.ERROR):
            page.problems.append(e.exception.message if kind == "exception" else e.alert.body)
    return page


class Session:
    """One browser tab's traffic: the websocket of one Streamlit session."""

    def __init__(self, base: str):
        self.base = base                                 # http://host:port/
        self.cookie = ""
        self.ws = None
        self.id = ""
        self.uploader = ""                               # the image uploader's widget id

    async def open(self) -> Page:
        """Connect and wait for the default page."""
        start = time.perf_counter()
        with await asyncio.to_thread(urllib.request.urlopen, self.base + "_stcore/health") as answer:
            self.cookie = answer.headers["set-cookie"].split(";")[0]          # the XSRF cookie
        self.ws = await websockets.connect(self.base.replace("http", "ws", 1) + "_stcore/stream", max_size=None,
                                           subprotocols=["streamlit", self.token],
                                           additional_headers={"Cookie": self.cookie, "Origin": self.base.rstrip("/")})
        msg = BackMsg()
        msg.rerun_script.query_string = ""
        await self.ws.send(msg.SerializeToString())
        elements = await self.finished()
        self.uploader = next(e.file_uploader.id for e in elements if e.WhichOneof("type") == "file_uploader")
        return read_page(elements, time.perf_counter() - start)

    @property
    def token(self) -> str:
        return self.cookie.split("=", 1)[1]

    async def upload(self, name: str, data: bytes) -> Page:
        """Drop a file on the image uploader, as the front end does: ask for an upload URL, PUT
        the file there, rerun with the uploader's new state; wait for the finished page."""
        start = time.perf_counter()
        msg = BackMsg()
        msg.file_urls_request.request_id = uuid.uuid4().hex
        msg.file_urls_request.file_names.append(name)
        msg.file_urls_request.session_id = self.id
        await self.ws.send(msg.SerializeToString())
        urls = (await self.receive("file_urls_response")).file_urls_response.file_urls[0]
        boundary = uuid.uuid4().hex
        body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{name}"\r\n'
                f"Content-Type: image/png\r\n\r\n").encode() + data + f"\r\n--{boundary}--\r\n".encode()
        put = urllib.request.Request(self.base + urls.upload_url.lstrip("/"), data=body, method="PUT", headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "Cookie": self.cookie,
            "X-Xsrftoken": self.token})
        await asyncio.to_thread(lambda: urllib.request.urlopen(put).close())
        msg = BackMsg()
        widget = msg.rerun_script.widget_states.widgets.add()
        widget.id = self.uploader
        info = widget.file_uploader_state_value.uploaded_file_info.add()
        info.name, info.size, info.file_id = name, len(data), urls.file_id
        info.file_urls.CopyFrom(urls)
        await self.ws.send(msg.SerializeToString())
        return read_page(await self.finished(), time.perf_counter() - start)

    async def next_message(self) -> ForwardMsg:
        msg = ForwardMsg()
        msg.ParseFromString(await self.ws.recv())
        if msg.WhichOneof("type") == "new_session":      # sent at the start of every script run
            self.id = msg.new_session.initialize.session_id
        return msg

    async def receive(self, kind: str) -> ForwardMsg:
        """The next message of this kind (others are dropped)."""
        while (msg := await self.next_message()).WhichOneof("type") != kind:
            pass
        return msg

    async def finished(self) -> list:
        """The elements of the next script run that finishes (a run cut short for a rerun starts over)."""
        elements = []
        while True:
            msg = await self.next_message()
            kind = msg.WhichOneof("type")
            if kind == "new_session":
                elements = []
            elif kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
                elements.append(msg.delta.new_element)
            elif kind == "script_finished" and msg.script_finished != ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                if msg.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                    raise RuntimeError(f"script run ended with status {msg.script_finished}")
                return elements

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()


def images(count: int, start: int) -> list[bytes]:
    """`count` generated shapes (160 px PNGs), from sample `start` of a fixed seed on."""
    out = []
    for i in range(start, start + count):
        buf = io.BytesIO()
        Image.fromarray(shapes.render(13, i, 160).image).save(buf, "PNG")
        out.append(buf.getvalue())
    return out


def offline(data: list[bytes]) -> list[list[tuple[str, float]]]:
    """Each image's top-5 predictions from the library in this process, as the page shows them."""
    model = pretrained.load(pretrained.DEFAULT_MODEL)
    return [[(p.label, 100 * p.probability) for p in lens.inspect_image(model, d).predictions()] for d in data]


def same(a: list[tuple[str, float]], b: list[tuple[str, float]], tolerance: float = TOLERANCE) -> bool:
    return len(a) == len(b) and all(x == y and abs(p - q) <= tolerance for (x, p), (y, q) in zip(a, b))


@dataclass(frozen=True)
class Upload:
    name: str
    data: bytes
    expected: list[tuple[str, float]]


def batches(sessions: list[int], rounds: int) -> dict[tuple[int, int], list[Upload]]:
    """(round, N) -> N uploads whose predictions tell them apart (so that cross-talk shows)."""
    needed = rounds * sum(sessions)
    data = images(needed * 2, 0)                   # spares for images too alike to tell apart
    expected = offline(data)
    pool = iter(zip(data, expected))
    out = {}
    for r in range(rounds):
        for n in sessions:
            batch = []
            while len(batch) < n:
                d, e = next(pool)
                if not any(same(e, u.expected, 10 * TOLERANCE) for u in batch):
                    batch.append(Upload(f"load-r{r}-n{n}-s{len(batch)}.png", d, e))
            out[r, n] = batch
    return out


def judged(page: Page | BaseException, upload: Upload, batch: list[Upload]) -> str:
    """"ok", "cross-talk" (the page shows another upload's image or predictions) or "error: ..."."""
    if isinstance(page, BaseException):
        return f"error: {type(page).__name__}: {page}"
    if page.problems:
        return "error: " + "; ".join(page.problems)
    if page.caption.startswith(upload.name + ",") and same(page.predictions, upload.expected):
        return "ok"
    others = [u for u in batch if u is not upload]
    if any(page.caption.startswith(u.name + ",") or same(page.predictions, u.expected) for u in others):
        return "cross-talk"
    return f"error: shows {page.caption!r} with {page.predictions[:1]}, expected {upload.expected[:1]}"


async def opened(bases: list[str]) -> tuple[list[Session], list]:
    """A new session on each of `bases` (a replica's URL), opened at once: (sessions, default pages
    or what went wrong)."""
    sessions = [Session(base) for base in bases]
    pages = await asyncio.gather(*(asyncio.wait_for(s.open(), TIMEOUT_S) for s in sessions), return_exceptions=True)
    return sessions, pages


async def uploaded(sessions: list[Session], pages: list, uploads: list[Upload]) -> list:
    """Each session uploads its file, all at once: the pages, or what went wrong (also in opening)."""
    async def one(session: Session, page, upload: Upload):
        if isinstance(page, BaseException):
            raise page
        return await asyncio.wait_for(session.upload(upload.name, upload.data), TIMEOUT_S)
    return await asyncio.gather(*map(one, sessions, pages, uploads), return_exceptions=True)


async def one_level(bases: list[str], pids: list[int], batch: list[Upload]) -> dict:
    """N new sessions, spread over the replicas and kept there (sticky): default pages, then each
    its own new image; then N more new sessions on the images the first N uploaded (rotated by one,
    each on the replica that saw its image). Times, judgements and the servers' peak RSS."""
    reset_peak(pids)
    home = [bases[i % len(bases)] for i in range(len(batch))]
    sessions, first = await opened(home)
    fresh = await uploaded(sessions, first, batch)
    rotated, moved = batch[1:] + batch[:1], home[1:] + home[:1]
    again, opened_again = await opened(moved)
    repeat = await uploaded(again, opened_again, rotated)
    for s in sessions + again:
        await s.close()
    return {"first": [p.seconds for p in first if isinstance(p, Page)],
            "fresh": [p.seconds for p in fresh if isinstance(p, Page)],
            "repeat": [p.seconds for p in repeat if isinstance(p, Page)],
            "verdicts": [judged(p, u, batch) for p, u in zip(fresh + repeat, batch + rotated)], "rss": peak(pids)}


def processes(pids: list[int]) -> list[int]:
    """The processes and their descendants."""
    out = list(pids)
    for pid in pids:
        for task in Path(f"/proc/{pid}/task").iterdir():
            try:
                children = [int(c) for c in (task / "children").read_text().split()]
            except FileNotFoundError:                          # a thread that ended meanwhile
                continue
            out += processes(children)
    return out


def reset_peak(pids: list[int]) -> None:
    for p in processes(pids):
        Path(f"/proc/{p}/clear_refs").write_text("5")          # VmHWM := current RSS


def peak(pids: list[int]) -> int:
    """Bytes: the summed VmHWM of the processes and their descendants."""
    return sum(int(re.search(r"VmHWM:\s+(\d+) kB", Path(f"/proc/{p}/status").read_text())[1]) * 1024
               for p in processes(pids))


def cpu_seconds(pids: list[int]) -> float:
    """User + system CPU time of the processes and their descendants."""
    return sum(sum(map(int, Path(f"/proc/{p}/stat").read_text().rsplit(")", 1)[1].split()[11:13]))
               for p in processes(pids)) / os.sysconf("SC_CLK_TCK")


def percentile(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


async def run(bases: list[str], pids: list[int], plan: dict, sessions: list[int], rounds: int) -> dict:
    warm, pages = await opened(bases)
    await uploaded(warm, pages, [Upload("warm-up.png", images(1, 10_000)[0], [])] * len(bases))  # lazy imports
    for s in warm:
        await s.close()
    results = {n: [] for n in sessions}
    for r in range(rounds):
        for n in (sessions if r % 2 == 0 else sessions[::-1]):
            results[n].append(await one_level(bases, pids, plan[r, n]))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, nargs="+", default=[1, 4, 8, 16])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replicas", type=int, default=1)
    args = parser.parse_args()
    sessions = sorted({1, *args.sessions})                     # N = 1 gives the single-session time
    plan = batches(sessions, args.rounds)
    cores = len(os.sched_getaffinity(0))
    with ExitStack() as stack:
        servers = [stack.enter_context(streamlit("serve.py")) for _ in range(args.replicas)]
        bases, pids = [base for base, _ in servers], [server.pid for _, server in servers]
        os.nice(CLIENT_NICE)                                   # after the servers started: they keep nice 0
        client_cpu, server_cpu = time.process_time(), cpu_seconds(pids)
        results = asyncio.run(run(bases, pids, plan, sessions, args.rounds))
        client_cpu, server_cpu = time.process_time() - client_cpu, cpu_seconds(pids) - server_cpu
    single = median(results[1], "fresh")
    spread = "sessions spread round robin, each kept on its replica; " if args.replicas > 1 else ""
    print(f"{args.replicas} x streamlit run serve.py on {cores} cores ({spread}{args.rounds} rounds per N). "
          "Client: one asyncio process speaking "
          f"Streamlit's websocket protocol, nice +{CLIENT_NICE}; CPU used: servers {server_cpu:.0f} s, client "
          f"{client_cpu:.0f} s. Single-session upload -> page: {single:.3f} s")
    print(f"{'N':>3} {'p50':>7} {'p95':>7} {'ideal':>7} {'p95/ideal':>9} {'pages/s':>7} {'errors':>6} {'cross-talk':>10} "
          f"{'peak RSS':>9} {'same image p50':>14} {'default page p50':>16}")
    problems = []
    for n in sessions:
        levels = results[n]
        fresh = [t for level in levels for t in level["fresh"]]
        verdicts = [v for level in levels for v in level["verdicts"]]
        errors = [v for v in verdicts if v.startswith("error")]
        problems += errors
        ideal = max(1, n / cores) * single
        p95 = percentile(fresh, 95) if fresh else float("nan")
        rate = statistics.median(n / max(level["fresh"]) for level in levels if level["fresh"])
        print(f"{n:>3} {median(levels, 'fresh'):>6.2f}s {p95:>6.2f}s {ideal:>6.2f}s {p95 / ideal:>9.2f} {rate:>7.1f} "
              f"{len(errors):>6} {verdicts.count('cross-talk'):>10} {max(level['rss'] for level in levels) / 2**20:>6.0f} MB "
              f"{median(levels, 'repeat'):>13.2f}s {median(levels, 'first'):>15.2f}s")
    for problem in dict.fromkeys(problems):
        print("  " + problem)
    print("Target at N = 16: no errors, no cross-talk, p95 <= 2x ideal (max(1, N / cores) x the single-session time). "
          "pages/s: N / the slowest of the N, median over rounds. 'same image': N more new sessions uploading the "
          "images the first N did (from the cache); 'default page': a new session's first page.")


def median(levels: list[dict], key: str) -> float:
    """The median of `key`'s times over every round; NaN if none came back."""
    times = [t for level in levels for t in level[key]]
    return statistics.median(times) if times else float("nan")

if __name__ == "__main__":
    main()
