"""One Spark session per process, started on first use, reused, stoppable.

Starting Spark costs 11-13 s on an idle 2-core machine (a JVM plus a SparkContext), so
every Spark model in a process shares the session :func:`get_session` returns; a request
with other start-up settings (another master, driver memory, BLAS) stops it and starts a
new one, JVM included. :func:`stop_session` stops the session *and* its JVM (the memory
comes back) and removes the session's temporary folder; it is registered with ``atexit``
and is what the pipeline calls at the end of a run.

Local sessions (``local[...]``, or a master on 127.0.0.1 / localhost) bind to loopback
only: ``SPARK_LOCAL_IP=127.0.0.1``, ``spark.driver.host`` and ``spark.driver.bindAddress``
127.0.0.1. pyspark is imported only inside functions, so importing this module is cheap.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes.util
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kuairec.errors import ModelError

if TYPE_CHECKING:  # pragma: no cover
    from pyspark.sql import SparkSession

__all__ = [
    "SessionSettings",
    "SparkUnavailable",
    "blas_implementation",
    "get_session",
    "java_problem",
    "jvm_log",
    "jvm_pids",
    "session_is_running",
    "stop_session",
]

LOOPBACK = "127.0.0.1"
JAVA_HINT = (
    "install a Java 17+ runtime (Debian/Ubuntu: apt-get install openjdk-17-jre-headless) "
    "or set JAVA_HOME"
)


class SparkUnavailable(ModelError):
    """Spark cannot start here (no Java, the JVM failed, the master is unreachable)."""


@dataclass(frozen=True)
class SessionSettings:
    """What a session is started with; two requests share a session when these are equal."""

    master: str = "local[*]"
    driver_memory: str = "4g"
    executor_memory: str | None = None
    executor_cores: int | None = None
    driver_host: str | None = None  # None: 127.0.0.1 for local masters, Spark's choice else
    ui: bool = False
    native_blas: str = "auto"  # "auto" (system libblas.so.3 if any), "java", or a library
    kryo: bool = True
    extra: tuple[tuple[str, str], ...] = ()  # more Spark settings, (key, value) pairs


_lock = threading.RLock()
_state: dict[str, Any] = {"session": None, "settings": None, "tmp": None}


def is_local_master(master: str) -> bool:
    """Whether the master runs on this machine's loopback (local mode or 127.0.0.1)."""
    if master.startswith("local"):
        return True
    host = re.sub(r"^[a-z0-9+]+://", "", master).split(":")[0].split("/")[0]
    return host in (LOOPBACK, "localhost")


def java_problem() -> str | None:
    """Why no usable Java runs here (one line, says what to install), or None."""
    home = os.environ.get("JAVA_HOME")
    java = str(Path(home) / "bin" / "java") if home else shutil.which("java")
    if not java or not Path(java).exists():
        where = f"JAVA_HOME={home} has no bin/java" if home else "no java on PATH"
        return f"Spark needs Java ({where}): {JAVA_HINT}"
    try:
        out = subprocess.run(
            [java, "-version"], capture_output=True, text=True, timeout=60, check=False
        )
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"Spark needs Java, but {java} -version failed ({exc}): {JAVA_HINT}"
    match = re.search(r'version "(\d+)(?:\.(\d+))?', out.stderr + out.stdout)
    if match is None:
        return f"Spark needs Java, but {java} -version printed no version: {JAVA_HINT}"
    major = int(match.group(1))
    major = int(match.group(2) or 0) if major == 1 else major  # "1.8.0" is Java 8
    if major < 17:
        return f"Spark 4 needs Java 17 or newer, found Java {major} ({java}): {JAVA_HINT}"
    return None


def native_blas_library(choice: str) -> str | None:
    """The native BLAS library netlib should load for ``choice``, or None for Java."""
    if choice == "java":
        return None
    if choice != "auto":
        return choice
    # netlib's default is libblas.so.3: Debian's OpenBLAS packages provide it
    return "libblas.so.3" if ctypes.util.find_library("blas") else None


LOG4J = """rootLogger.level = error
rootLogger.appenderRef.stderr.ref = console
appender.console.type = Console
appender.console.name = console
appender.console.target = SYSTEM_ERR
appender.console.layout.type = PatternLayout
appender.console.layout.pattern = %d{HH:mm:ss} %p %c{1}: %m%n
"""


def _blas_option(settings: SessionSettings) -> str:
    lib = native_blas_library(settings.native_blas)
    # a name dlopen cannot find makes netlib fall back to its Java (VectorBLAS) BLAS
    return f"-Ddev.ludovic.netlib.blas.nativeLib={lib or 'kuairec-java-blas-only'}"


def _log4j_option(tmp: Path) -> str:
    log4j = tmp / "log4j2.properties"  # errors only: no start-up chatter on stderr
    log4j.write_text(LOG4J)
    return f"-Dlog4j2.configurationFile={log4j.as_uri()}"


def _conf(settings: SessionSettings, tmp: Path) -> dict[str, str]:
    local = is_local_master(settings.master)
    host = settings.driver_host or (LOOPBACK if local else None)
    blas = _blas_option(settings)
    conf = {
        "spark.driver.memory": settings.driver_memory,
        "spark.ui.enabled": str(settings.ui).lower(),
        "spark.ui.showConsoleProgress": "false",
        "spark.driver.extraJavaOptions": f"{_log4j_option(tmp)} {blas}",
        "spark.executor.extraJavaOptions": blas,
        # one BLAS thread per task: Spark's tasks are the parallelism
        "spark.executorEnv.OPENBLAS_NUM_THREADS": "1",
        "spark.sql.execution.arrow.pyspark.enabled": "true",
    }
    if host is not None:
        conf["spark.driver.host"] = host
        conf["spark.driver.bindAddress"] = LOOPBACK if local else host
    if settings.master.startswith("local"):
        conf["spark.local.dir"] = str(tmp / "local")  # shuffle files: gone at stop
    if settings.executor_memory:
        conf["spark.executor.memory"] = settings.executor_memory
    if settings.executor_cores:
        conf["spark.executor.cores"] = str(settings.executor_cores)
    if settings.kryo:
        conf["spark.serializer"] = "org.apache.spark.serializer.KryoSerializer"
    for key, value in settings.extra:
        if key in ("spark.driver.extraJavaOptions", "spark.executor.extraJavaOptions"):
            conf[key] = f"{conf[key]} {value}"  # kept: the log and BLAS options
        else:
            conf[key] = value
    return conf


def get_session(settings: SessionSettings | None = None) -> SparkSession:
    """The process's Spark session for ``settings``, started now if needed.

    Raises :class:`SparkUnavailable` (one line, with the reason) when Java is missing or
    Spark cannot start.
    """
    settings = settings or SessionSettings()
    with _lock:
        current = _state["session"]
        if current is not None and _state["settings"] == settings and _alive(current):
            return current
        if current is not None:
            stop_session()
        problem = java_problem()
        if problem:
            raise SparkUnavailable(problem)
        tmp = Path(tempfile.mkdtemp(prefix="kuairec-spark-"))
        try:
            session = _start(settings, tmp)
        except Exception as exc:
            reason = _one_line(exc)
            tail = _log_tail(tmp)
            _kill_gateway()
            shutil.rmtree(tmp, ignore_errors=True)
            if tail:
                reason = f"{reason} (JVM: {tail[:300]})"
            raise SparkUnavailable(f"Spark could not start ({settings.master}): {reason}") from None
        _state.update(session=session, settings=settings, tmp=tmp)
        from kuairec.models.backends import on_close

        on_close("spark", stop_session)  # whoever runs the models closes it when done
        return session


def _start(settings: SessionSettings, tmp: Path) -> SparkSession:
    try:
        from pyspark import SparkConf, SparkContext
        from pyspark.java_gateway import launch_gateway
        from pyspark.sql import SparkSession
    except ImportError as exc:  # pragma: no cover - the registry checks first
        raise SparkUnavailable("Spark needs pyspark (pip install 'kuairec[spark]')") from exc
    env = {"OPENBLAS_NUM_THREADS": "1"}  # the local JVM's BLAS: one thread per task
    if is_local_master(settings.master):
        env["SPARK_LOCAL_IP"] = LOOPBACK  # read by the JVM at start: bind to loopback
        # Python workers on this machine run this interpreter (its packages, kuairec)
        env["PYSPARK_PYTHON"] = os.environ.get("PYSPARK_PYTHON") or sys.executable
    conf = SparkConf(loadDefaults=False).setMaster(settings.master).setAppName("kuairec")
    for key, value in _conf(settings, tmp).items():
        conf.set(key, value)
    # the JVM's own output (its start-up lines, log4j, Python workers' stderr) goes to a
    # log file in the session folder, never to the user's terminal: jvm_log() names it
    with _environment(env), open(tmp / "jvm.log", "ab") as log:
        gateway = launch_gateway(conf, popen_kwargs={"stdout": log, "stderr": log})
        try:
            SparkContext(conf=conf, gateway=gateway)
        except BaseException:
            SparkContext._gateway = gateway  # so that _kill_gateway ends this JVM
            raise
    session = SparkSession.builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    return session


def jvm_log() -> Path | None:
    """The running session's JVM log (start-up lines, Spark's errors), or None."""
    tmp = _state["tmp"]
    return None if tmp is None else tmp / "jvm.log"


def _log_tail(tmp: Path, lines: int = 3) -> str:
    try:
        text = (tmp / "jvm.log").read_text(errors="replace").strip().splitlines()
    except OSError:
        return ""
    keep = [line for line in text if "incubator" not in line][-lines:]
    return " | ".join(keep)


@contextlib.contextmanager
def _environment(values: dict[str, str]):  # noqa: ANN202
    old = {k: os.environ.get(k) for k in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for key, value in old.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def _alive(session: SparkSession) -> bool:
    try:
        return not session.sparkContext._jsc.sc().isStopped()
    except Exception:  # the JVM is gone
        return False


def session_is_running() -> bool:
    """Whether this process holds a started Spark session."""
    with _lock:
        return _state["session"] is not None


def stop_session() -> None:
    """Stop the shared session and its JVM and remove its temporary folder (idempotent)."""
    with _lock:
        session, tmp = _state["session"], _state["tmp"]
        _state.update(session=None, settings=None, tmp=None)
        if session is not None:
            with contextlib.suppress(Exception):
                session.stop()
        _kill_gateway()
        if tmp is not None:
            shutil.rmtree(tmp, ignore_errors=True)


def _kill_gateway() -> None:
    """End pyspark's gateway JVM, so the next session starts a fresh one (new -Xmx, BLAS)."""
    if "pyspark" not in sys.modules:  # never imported: no JVM (and no import cost now)
        return
    from pyspark import SparkContext

    gateway = SparkContext._gateway
    SparkContext._gateway = None
    SparkContext._jvm = None
    if gateway is None:
        return
    with contextlib.suppress(Exception):
        gateway.shutdown()
    proc = getattr(gateway, "proc", None)
    if proc is not None:
        with contextlib.suppress(Exception):
            proc.stdin.close()  # the JVM exits at EOF on its stdin
        try:
            proc.wait(timeout=30)
        except Exception:
            with contextlib.suppress(Exception):
                proc.kill()
                proc.wait(timeout=10)


def current_session() -> SparkSession | None:
    """The running shared session (None when none was started)."""
    return _state["session"]


def current_settings() -> SessionSettings | None:
    """The settings the running session was started with (None when none runs)."""
    return _state["settings"]


def session_tmp() -> Path | None:
    """The running session's temporary folder (removed by :func:`stop_session`)."""
    return _state["tmp"]


def blas_implementation(session: SparkSession) -> dict[str, str]:
    """Which BLAS / LAPACK classes Spark's ALS uses in this JVM (JNI = native)."""
    netlib = session._jvm.dev.ludovic.netlib
    return {  # Spark's nativeBLAS is NativeBLAS when it loads, else this same fallback
        "blas": netlib.blas.BLAS.getInstance().getClass().getSimpleName(),
        "lapack": netlib.lapack.LAPACK.getInstance().getClass().getSimpleName(),
    }


def jvm_pids() -> list[int]:
    """Process ids of the JVMs this process started (pyspark's gateway and its children)."""
    out, todo = [], [os.getpid()]
    while todo:
        pid = todo.pop()
        try:
            children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
        except OSError:
            continue
        for child in map(int, children):
            todo.append(child)
            with contextlib.suppress(OSError):
                if Path(f"/proc/{child}/exe").resolve().name == "java":
                    out.append(child)
    return out


def _one_line(exc: BaseException) -> str:
    text = " ".join(str(exc).split()) or type(exc).__name__
    return text[:300]


atexit.register(stop_session)
