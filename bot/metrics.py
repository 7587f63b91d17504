"""Vigil's Prometheus metrics, in a registry of their own (several apps can run in one process).

Each part is given a ``Metrics`` and reports through small calls (``metrics.outcome(...)``); a
part that was not given one gets ``NO_METRICS``, which does nothing, so the core runs the same
without the ops endpoint. Labels carry kinds and platforms only: never a chat, user or message id
(those belong in logs and the audit, and would make the series grow without bound).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import TYPE_CHECKING

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily

if TYPE_CHECKING:  # the type only: the metrics stay importable without the detectors
    from bot.index_versions import IndexLag
    from bot.outcomes import Outcome
    from bot.store.records import ListRecord

# scans take from a few ms (a small photo) to seconds (a video on a busy machine)
SCAN_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.images_scanned = Counter(
            "vigil_images_scanned",
            "Images checked, by platform and outcome (clean, review, nudity, unscannable)",
            ["platform", "outcome"],
            registry=r,
        )
        self.hits = Counter(
            "vigil_hits",
            "Images with a finding, by kind (nudity, review, hash, unscannable)",
            ["kind"],
            registry=r,
        )
        self.decisions = Counter(
            "vigil_decisions", "Decisions, by verdict and whether it was a dry run", ["verdict", "dry_run"], registry=r
        )
        self.actions = Counter(
            "vigil_actions",
            "Platform actions (delete, mute, ban), by result (done, too_old, no_right, error)",
            ["action", "result"],
            registry=r,
        )
        self.alerts = Counter(
            "vigil_alerts",
            "Private alerts to admins, by platform and result (sent, unreachable, failed)",
            ["platform", "result"],
            registry=r,
        )
        self.alert_failures = Counter(
            "vigil_alert_failures",
            "Alerts that could not be delivered (unreachable admins included)",
            ["platform"],
            registry=r,
        )
        self.scan_seconds = Histogram(
            "vigil_scan_seconds",
            "Time to decode, hash and run the models on one image",
            buckets=SCAN_BUCKETS,
            registry=r,
        )
        self.retention_deleted = Counter(
            "vigil_retention_deleted", "Rows removed by the retention job, by kind", ["kind"], registry=r
        )
        self.retention_runs = Counter(
            "vigil_retention_runs", "Runs of the retention job, by result (ok, error)", ["result"], registry=r
        )
        self.work_failures = Counter(
            "vigil_work_failures",
            "Attempts at an image that failed (it is retried with backoff)",
            ["platform"],
            registry=r,
        )
        self.work_given_up = Counter(
            "vigil_work_given_up",
            "Images given up after too many attempts (the admins were told)",
            ["platform"],
            registry=r,
        )
        self.list_entries = Gauge(
            "vigil_list_entries", "Entries in hash lists, by kind and scope", ["kind", "scope"], registry=r
        )
        self.lists = Gauge("vigil_lists", "Hash lists, by kind and scope", ["kind", "scope"], registry=r)
        self.events_rejected = Counter(
            "vigil_events_rejected",
            "Platform events skipped at the adapter's edge, by platform and reason (bad_event_id, too_deep, "
            "not_recordable, undecryptable, …): logged by id and never retried",
            ["platform", "reason"],
            registry=r,
        )
        # the in-memory indexes against the store's change logs (bot/index_versions.py), read at scrape time
        self.index_lag = Gauge(
            "vigil_index_lag_changes",
            "Changes of a store change log (lists, protected) not applied to this process's index yet",
            ["log"],
            registry=r,
        )
        self.index_age = Gauge(
            "vigil_index_catch_up_age_seconds",
            "Seconds since this process's index last read its change log to the end",
            ["log"],
            registry=r,
        )
        self.index_waits_given_up = Gauge(
            "vigil_index_waits_given_up",
            "Images judged before this process applied the index changes they were recorded after, since start",
            registry=r,
        )
        self.stale_hits = Gauge(
            "vigil_stale_hits_dropped",
            "Hits found in memory that the store no longer held (not acted on), since start",
            registry=r,
        )
        self._live: _LiveGauges = _LiveGauges()
        r.register(self._live)

    # --- from the core ------------------------------------------------------------------------

    def outcome(self, platform: str, outcome: Outcome) -> None:
        """One image handled: its outcome, what was found, how long the scan took."""
        name = "unscannable" if outcome.error is not None else outcome.severity
        self.images_scanned.labels(platform, name).inc()
        if outcome.scan is not None:
            seconds = outcome.scan.timings_ms.get("total")
            if seconds is not None:
                self.scan_seconds.observe(seconds / 1000.0)
        self.decisions.labels(outcome.decision.verdict, str(outcome.decision.dry_run).lower()).inc()
        if outcome.error is not None:
            self.hits.labels("unscannable").inc()
        elif outcome.severity != "clean":
            self.hits.labels(outcome.severity).inc()
        if any(m.kind == "block" for m in outcome.matches):
            self.hits.labels("hash").inc()

    def action(self, action: str, result: str) -> None:
        self.actions.labels(action, result).inc()

    def alert(self, platform: str, result: str) -> None:
        self.alerts.labels(platform, result).inc()
        if result != "sent":
            self.alert_failures.labels(platform).inc()

    def work_failed(self, platform: str) -> None:
        self.work_failures.labels(platform).inc()

    def work_gave_up(self, platform: str) -> None:
        self.work_given_up.labels(platform).inc()

    def rejected_event(self, platform: str, reason: str) -> None:
        """An event the adapter skipped (malformed, out of bounds, or not recordable)."""
        self.events_rejected.labels(platform, reason).inc()

    def retention(self, deleted: Mapping[str, int], ok: bool = True) -> None:
        self.retention_runs.labels("ok" if ok else "error").inc()
        for kind, count in deleted.items():
            if count:
                self.retention_deleted.labels(kind).inc(count)

    # --- read at scrape time --------------------------------------------------------------------

    def watch(self, name: str, doc: str, read: Callable[[], Iterable[tuple[Mapping[str, str], float]]]) -> None:
        """A gauge read when /metrics is scraped (queue depth, connections): ``read`` gives (labels, value)."""
        self._live.add(name, doc, read)

    def set_lists(self, lists: Iterable[ListRecord], sizes: Mapping[int, int]) -> None:
        """List counts and sizes, from the store's lists and ``list_sizes()``."""
        entries: dict[tuple[str, str], int] = {}
        count: dict[tuple[str, str], int] = {}
        for lst in lists:
            key = (lst.kind, lst.scope)
            count[key] = count.get(key, 0) + 1
            entries[key] = entries.get(key, 0) + sizes.get(lst.id, 0)
        for kind in ("block", "allow"):
            for scope in ("group", "instance"):
                self.lists.labels(kind, scope).set(count.get((kind, scope), 0))
                self.list_entries.labels(kind, scope).set(entries.get((kind, scope), 0))

    def set_index_lag(self, lags: Iterable[IndexLag], waits_given_up: int, stale_hits: int) -> None:
        """Index lag per change log (``IndexGate.lag``) and the counts of waits and hits given up."""
        for lag in lags:
            self.index_lag.labels(str(lag.kind)).set(lag.behind)
            if lag.since_catch_up is not None:
                self.index_age.labels(str(lag.kind)).set(lag.since_catch_up)
        self.index_waits_given_up.set(waits_given_up)
        self.stale_hits.set(stale_hits)

    def render(self) -> bytes:
        return generate_latest(self.registry)


class _LiveGauges:
    """A collector whose values are read from the running app at each scrape."""

    def __init__(self) -> None:
        self._gauges: dict[str, tuple[str, Callable[[], Iterable[tuple[Mapping[str, str], float]]]]] = {}

    def add(self, name: str, doc: str, read: Callable[[], Iterable[tuple[Mapping[str, str], float]]]) -> None:
        self._gauges[name] = (doc, read)

    def describe(self) -> list[GaugeMetricFamily]:
        return []  # names are only known once watched; nothing to check up front

    def collect(self) -> Iterable[GaugeMetricFamily]:
        for name, (doc, read) in list(self._gauges.items()):
            rows = list(read())
            labels = sorted({k for labels, _ in rows for k in labels})
            family = GaugeMetricFamily(name, doc, labels=labels)
            for row_labels, value in rows:
                family.add_metric([row_labels.get(k, "") for k in labels], value)
            yield family


class _NoMetrics(Metrics):
    """Does nothing: for cores and tests run without the ops endpoint."""

    def __init__(self) -> None:  # no registry, no metric objects
        pass

    def outcome(self, platform: str, outcome: Outcome) -> None:
        pass

    def action(self, action: str, result: str) -> None:
        pass

    def alert(self, platform: str, result: str) -> None:
        pass

    def work_failed(self, platform: str) -> None:
        pass

    def work_gave_up(self, platform: str) -> None:
        pass

    def retention(self, deleted: Mapping[str, int], ok: bool = True) -> None:
        pass

    def rejected_event(self, platform: str, reason: str) -> None:
        pass

    def set_index_lag(self, lags: Iterable[IndexLag], waits_given_up: int, stale_hits: int) -> None:
        pass


NO_METRICS: Metrics = _NoMetrics()


def metrics_of(owner: object) -> Metrics:
    """The ``metrics`` an app gave to ``owner`` (an adapter reads the core's this way), or NO_METRICS."""
    return getattr(owner, "metrics", None) or NO_METRICS
