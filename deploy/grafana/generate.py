"""Write the Grafana dashboards of streamer (deploy/grafana/dashboards/*.json) from code.

    python deploy/grafana/generate.py          # rewrite the JSON files
    python deploy/grafana/generate.py --check  # exit 1 if they differ from what this writes

Built with grafana-foundation-sdk (a dev dependency, pinned to its Grafana 11.6 build), so the
panels are typed. The tests check that the committed JSON is what this script writes, that it
passes Grafana's own TypeScript schema (@grafana/schema 11.6), and that every query in it
returns data from a real Prometheus scraping a real worker through a drift.

Every panel filters on the ``topic`` and ``partition`` variables where its metric has them.
README.md describes the dashboards panel by panel, with their queries.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from grafana_foundation_sdk.builders import common as cb
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.builders import prometheus as prom
from grafana_foundation_sdk.builders import stat, statetimeline, statushistory, table, timeseries
from grafana_foundation_sdk.cog.builder import Builder
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import prometheus as pm

HERE = Path(__file__).parent
OUT = HERE / "dashboards"

DS = dm.DataSourceRef(type_val="prometheus", uid="${datasource}")
#: The selector of every per-partition series.
SEL = 'topic=~"$topic", partition=~"$partition"'
#: The Prometheus job of the workers (compose, Kubernetes and the alerts use this name).
JOB = 'job="streamer"'
RATE = "[$__rate_interval]"

GREEN, YELLOW, RED = "green", "#EAB839", "red"


# -- building blocks ---------------------------------------------------------------------------


def q(expr: str, legend: str = "", *, instant: bool = False, ref: str = "") -> prom.Dataquery:
    """A Prometheus query of the dashboard's datasource."""
    query = prom.Dataquery().expr(expr).datasource(DS)
    if legend:
        query = query.legend_format(legend)
    query = query.instant().format(pm.PromQueryFormat.TABLE) if instant else query.range()
    if ref:
        query = query.ref_id(ref)
    return query


def levels(names: Sequence[str]) -> list[dm.ValueMapping]:
    """Value mappings 0, 1, 2 -> the given names in green, yellow, red."""
    colors = (GREEN, YELLOW, RED)
    return [
        dm.ValueMap(
            options={
                str(i): dm.ValueMappingResult(text=name, color=color, index=i)
                for i, (name, color) in enumerate(zip(names, colors, strict=True))
            }
        )
    ]


def steps(*pairs: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in pairs])
    )


def legend_table() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.TABLE)
        .placement(cm.LegendPlacement.RIGHT)
        .show_legend(True)
        .calcs(["lastNotNull", "max"])
    )


def legend_list() -> cb.VizLegendOptions:
    return (
        cb.VizLegendOptions()
        .display_mode(cm.LegendDisplayMode.LIST)
        .placement(cm.LegendPlacement.BOTTOM)
        .show_legend(True)
    )


def ts(
    title: str,
    description: str,
    targets: Sequence[prom.Dataquery],
    *,
    unit: str = "short",
    w: int = 12,
    h: int = 8,
    bars: bool = False,
    table_legend: bool = False,
    thresholds: db.ThresholdsConfig | None = None,
    min_val: float | None = None,
) -> timeseries.Panel:
    panel = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .targets(list(targets))
        .unit(unit)
        .span(w)
        .height(h)
        .legend(legend_table() if table_legend else legend_list())
        .line_width(1)
        .fill_opacity(10)
    )
    if bars:
        panel = panel.draw_style(cm.GraphDrawStyle.BARS).fill_opacity(80)
    if thresholds is not None:
        panel = panel.thresholds(thresholds).thresholds_style(
            cb.GraphThresholdsStyleConfig().mode(cm.GraphThresholdsStyleMode.LINE)
        )
    if min_val is not None:
        panel = panel.min(min_val)
    return panel


def big(
    title: str,
    description: str,
    expr: str,
    *,
    unit: str = "short",
    w: int = 4,
    decimals: float | None = None,
    thresholds: db.ThresholdsConfig | None = None,
) -> stat.Panel:
    panel = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(DS)
        .with_target(q(expr))
        .unit(unit)
        .span(w)
        .height(4)
        .graph_mode(cm.BigValueGraphMode.AREA)
        .color_mode(cm.BigValueColorMode.VALUE)
        .reduce_options(cb.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .thresholds(thresholds or steps((None, GREEN)))
    )
    if decimals is not None:
        panel = panel.decimals(decimals)
    return panel


def variables(d: db.Dashboard) -> db.Dashboard:
    """Datasource, topic and partition (multi-value, "All" = any)."""
    source = db.DatasourceVariable("datasource").label("Data source").type("prometheus")
    topic = (
        db.QueryVariable("topic")
        .label("Topic")
        .datasource(DS)
        .query("label_values(streamer_events_total, topic)")
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    partition = (
        db.QueryVariable("partition")
        .label("Partition")
        .datasource(DS)
        .query('label_values(streamer_events_total{topic=~"$topic"}, partition)')
        .refresh(dm.VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(dm.VariableSort.NUMERICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )
    return d.with_variable(source).with_variable(topic).with_variable(partition)


def drift_annotation(signals: str) -> db.AnnotationQuery:
    """Drift alarms (level changes to alarm) of the given signals, as annotations."""
    return (
        db.AnnotationQuery()
        .name(f"Drift alarms ({signals.replace('|', ', ')})")
        .datasource(DS)
        .enable(True)
        .icon_color(RED)
        .expr(
            "sum by (topic, partition, signal) (increase(streamer_drift_events_total"
            f'{{{SEL}, signal=~"{signals}", level="alarm"}}[$__interval])) > 0'
        )
    )


def base(title: str, uid: str, description: str) -> db.Dashboard:
    return (
        db.Dashboard(title)
        .uid(uid)
        .description(description)
        .tags(["streamer"])
        .editable()
        .refresh("10s")
        .time("now-30m", "now")
        .timezone("browser")
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .link(
            db.DashboardLink("streamer")
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["streamer"])
            .as_dropdown(True)
            .include_vars(True)
            .keep_time(True)
        )
    )


# -- the dashboards ----------------------------------------------------------------------------


def overview() -> db.Dashboard:
    """Throughput, latency, lag, dead letters, models, checkpoints, cost."""
    events_rate = f"sum(rate(streamer_events_total{{{SEL}}}{RATE}))"
    d = variables(
        base(
            "streamer / overview",
            "streamer-overview",
            "Throughput, latency, lag, dead letters, models, checkpoints and cost of the "
            "streamer workers.",
        )
    ).annotation(drift_annotation("concept|feature|prediction|label|schema"))
    d = d.with_row(db.Row("Throughput and latency"))
    for panel in (
        big("Events/s", "Records consumed per second.", events_rate, unit="short", decimals=0),
        big(
            "Workers up",
            "Workers Prometheus scrapes successfully (job streamer).",
            f"sum(up{{{JOB}}})",
            decimals=0,
        ),
        big(
            "Workers ready",
            "Workers whose /readyz answers 200.",
            "sum(streamer_ready)",
            decimals=0,
        ),
        big(
            "Partitions assigned",
            "Input partitions held by the workers.",
            "sum(streamer_assigned_partitions)",
            decimals=0,
        ),
        big(
            "CPU s / 1M events",
            "Process CPU seconds per million events consumed: the cost per event.",
            f"1e6 * sum(rate(process_cpu_seconds_total{{{JOB}}}{RATE}))"
            f" / sum(rate(streamer_events_total{RATE}))",
            unit="s",
            decimals=1,
        ),
        big(
            "Dead-letter share",
            "Share of the records consumed that went to the dead-letter topic.",
            f'sum(rate(streamer_dead_letters_total{{topic=~"$topic"}}{RATE}))'
            f' / sum(rate(streamer_events_total{{topic=~"$topic"}}{RATE}))',
            unit="percentunit",
            thresholds=steps((None, GREEN), (0.001, YELLOW), (0.01, RED)),
        ),
    ):
        d = d.with_panel(panel)
    d = (
        d.with_panel(
            ts(
                "Throughput",
                "Records consumed, predictions produced and events learned from, per second.",
                [
                    q(
                        f"sum by (topic) (rate(streamer_events_total{{{SEL}}}{RATE}))",
                        "{{topic}} consumed",
                    ),
                    q(
                        f"sum by (topic) (rate(streamer_predictions_total{{{SEL}}}{RATE}))",
                        "{{topic}} predicted",
                    ),
                    q(
                        f"sum by (topic) (rate(streamer_learned_events_total{{{SEL}}}{RATE}))",
                        "{{topic}} learned",
                    ),
                ],
                unit="ops",
            )
        )
        .with_panel(
            ts(
                "Events/s by partition",
                "Records consumed per second, per input partition.",
                [
                    q(
                        f"sum by (topic, partition) (rate(streamer_events_total{{{SEL}}}{RATE}))",
                        "{{topic}}/{{partition}}",
                    )
                ],
                unit="ops",
            )
        )
        .with_panel(
            ts(
                "Processing latency",
                "Per event, from the consume call that returned it to its outputs produced (sent "
                "within linger.ms; the next commit waits for their acknowledgement).",
                [
                    q(
                        f"histogram_quantile({p}, sum by (le) (rate("
                        f"streamer_processing_latency_seconds_bucket{{{SEL}}}{RATE})))",
                        f"p{round(p * 100)}",
                    )
                    for p in (0.5, 0.99)
                ],
                unit="s",
            )
        )
        .with_panel(
            ts(
                "End-to-end latency",
                "Per prediction, from the event time to the prediction produced; includes the "
                "time the event waited in Kafka.",
                [
                    q(
                        f"histogram_quantile({p}, sum by (le) (rate("
                        f"streamer_end_to_end_latency_seconds_bucket{{{SEL}}}{RATE})))",
                        f"p{round(p * 100)}",
                    )
                    for p in (0.5, 0.99)
                ],
                unit="s",
            )
        )
    )
    d = (
        d.with_row(db.Row("Kafka"))
        .with_panel(
            ts(
                "Consumer lag",
                "Records between the committed offset and the high watermark, per partition.",
                [
                    q(
                        f"sum by (topic, partition) (streamer_consumer_lag{{{SEL}}})",
                        "{{topic}}/{{partition}}",
                    )
                ],
                w=8,
                min_val=0,
            )
        )
        .with_panel(
            ts(
                "Dead letters by reason",
                "Records sent to the dead-letter topic per second, by stage and reason.",
                [
                    q(
                        "sum by (stage, reason) (rate(streamer_dead_letters_total"
                        f'{{topic=~"$topic"}}{RATE}))',
                        "{{stage}}: {{reason}}",
                    )
                ],
                unit="ops",
                w=8,
                bars=True,
            )
        )
        .with_panel(
            ts(
                "Batch duration",
                "Time to process one consumed batch, decode to commit (all partitions).",
                [
                    q(
                        f"histogram_quantile({p}, sum by (le) (rate("
                        f"streamer_batch_duration_seconds_bucket{{{JOB}}}{RATE})))",
                        f"p{round(p * 100)}",
                    )
                    for p in (0.5, 0.99)
                ],
                unit="s",
                w=8,
            )
        )
    )
    d = (
        d.with_row(db.Row("Models"))
        .with_panel(
            ts(
                "Rolling prequential metrics",
                "Test-then-train metrics over the last evaluation.window labelled events, per "
                "partition and model role.",
                [
                    q(
                        f'streamer_model_metric{{{SEL}, window="rolling"}}',
                        "{{topic}}/{{partition}} {{role}} {{metric}}",
                    )
                ],
                table_legend=True,
            )
        )
        .with_panel(
            ts(
                "Running prequential metrics",
                "Test-then-train metrics since the model started, per partition and role.",
                [
                    q(
                        f'streamer_model_metric{{{SEL}, window="running"}}',
                        "{{topic}}/{{partition}} {{role}} {{metric}}",
                    )
                ],
                table_legend=True,
            )
        )
        .with_panel(
            table.Panel()
            .title("Model versions")
            .description("Version of the model in each role, per partition.")
            .datasource(DS)
            .with_target(
                q(
                    f"max by (topic, partition, model, role) (streamer_model_version{{{SEL}}})",
                    instant=True,
                )
            )
            .with_transformation(
                dm.DataTransformerConfig(
                    id_val="organize",
                    options={"excludeByName": {"Time": True}, "renameByName": {"Value": "version"}},
                )
            )
            .span(8)
            .height(8)
        )
        .with_panel(
            ts(
                "Lifecycle decisions",
                "Challengers started, promotions, rollbacks and challengers dropped.",
                [
                    q(
                        "sum by (decision) (increase(streamer_lifecycle_decisions_total"
                        f"{{{SEL}}}{RATE}))",
                        "{{decision}}",
                    )
                ],
                w=8,
                bars=True,
            )
        )
        .with_panel(
            ts(
                "Model updates published",
                "Model updates written to the model-update topic, by reason; and those that "
                "could not be published.",
                [
                    q(
                        "sum by (model, reason) (increase("
                        f"streamer_model_updates_published_total{{{JOB}}}{RATE}))",
                        "{{model}}: {{reason}}",
                    ),
                    q(
                        "sum by (model, reason) (increase("
                        f"streamer_model_update_failures_total{{{JOB}}}{RATE}))",
                        "{{model}} failed: {{reason}}",
                    ),
                ],
                w=8,
                bars=True,
            )
        )
    )
    d = (
        d.with_row(db.Row("Checkpoints"))
        .with_panel(
            ts(
                "Checkpoint age",
                "Time since each partition's last checkpoint (alert: 15 min).",
                [
                    q(
                        "time() - max by (topic, partition) "
                        f"(streamer_last_checkpoint_timestamp_seconds{{{SEL}}})",
                        "{{topic}}/{{partition}}",
                    )
                ],
                unit="s",
                w=6,
                thresholds=steps((None, GREEN), (900, RED)),
            )
        )
        .with_panel(
            ts(
                "Checkpoint size",
                "Size of each partition's last checkpoint.",
                [
                    q(
                        f"max by (topic, partition) (streamer_checkpoint_bytes{{{SEL}}})",
                        "{{topic}}/{{partition}}",
                    )
                ],
                unit="bytes",
                w=6,
            )
        )
        .with_panel(
            ts(
                "Checkpoint duration",
                "Time to write a checkpoint, pickling to acknowledgement.",
                [
                    q(
                        f"histogram_quantile({p}, sum by (le) (rate("
                        f"streamer_checkpoint_duration_seconds_bucket{{{JOB}}}{RATE})))",
                        f"p{round(p * 100)}",
                    )
                    for p in (0.5, 0.99)
                ],
                unit="s",
                w=6,
            )
        )
        .with_panel(
            ts(
                "Checkpoint failures and restores",
                "Failed checkpoints by reason; partition states restored by source.",
                [
                    q(
                        "sum by (reason) (increase(streamer_checkpoint_failures_total"
                        f"{{{JOB}}}{RATE}))",
                        "failed: {{reason}}",
                    ),
                    q(
                        f"sum by (source) (increase(streamer_restores_total{{{SEL}}}{RATE}))",
                        "restored from {{source}}",
                    ),
                ],
                w=6,
                bars=True,
            )
        )
    )
    d = (
        d.with_row(db.Row("Process"))
        .with_panel(
            ts(
                "CPU seconds per 1M events",
                "Process CPU time over events consumed, per worker: the cost figure.",
                [
                    q(
                        "1e6 * sum by (instance) (rate(process_cpu_seconds_total"
                        f"{{{JOB}}}{RATE}))"
                        f" / sum by (instance) (rate(streamer_events_total{RATE}))",
                        "{{instance}}",
                    )
                ],
                unit="s",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Resident memory",
                "Resident set size of each worker process.",
                [q(f"process_resident_memory_bytes{{{JOB}}}", "{{instance}}")],
                unit="bytes",
                w=8,
            )
        )
        .with_panel(
            ts(
                "Python GC collections",
                "Garbage collections per second, by generation.",
                [
                    q(
                        "sum by (instance, generation) (rate(python_gc_collections_total"
                        f"{{{JOB}}}{RATE}))",
                        "{{instance}} gen {{generation}}",
                    )
                ],
                unit="ops",
                w=8,
            )
        )
    )
    return d


def drift() -> db.Dashboard:
    """Concept drift, per-feature drift, prediction, label and schema drift."""
    feature_level = (
        f'max by (topic, partition, feature) (streamer_drift_level{{{SEL}, signal="feature"}})'
    )
    d = variables(
        base(
            "streamer / drift",
            "streamer-drift",
            "Concept drift, per-feature data drift, prediction, label and schema drift of the "
            "streamer workers.",
        )
    ).annotation(drift_annotation("concept"))
    d = (
        d.with_row(db.Row("Concept drift"))
        .with_panel(
            statetimeline.Panel()
            .title("Concept-drift state")
            .description(
                "The champion's error detector per partition: stable, warning or drift. A "
                "drift is held for a minute after the batch that saw it."
            )
            .datasource(DS)
            .with_target(
                q(
                    f"max by (topic, partition) (streamer_concept_drift_state{{{SEL}}})",
                    "{{topic}}/{{partition}}",
                )
            )
            .mappings(levels(["stable", "warning", "drift"]))
            .thresholds(steps((None, GREEN), (1, YELLOW), (2, RED)))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .show_value(cm.VisibilityMode.NEVER)
            .merge_values(True)
            .span(24)
            .height(6)
        )
        .with_panel(
            ts(
                "Champion accuracy: rolling and running",
                "A drop of the rolling accuracy below the running one is the concept change "
                "the detector reacts to (alert: 0.1 below for 5 min).",
                [
                    q(
                        "max by (topic, partition, window) (streamer_model_metric"
                        f'{{{SEL}, role="champion", metric="Accuracy"}})',
                        "{{topic}}/{{partition}} {{window}}",
                    )
                ],
                unit="percentunit",
            )
        )
        .with_panel(
            ts(
                "Drift events by signal and level",
                "Level changes published on the drift-events topic.",
                [
                    q(
                        "sum by (signal, level) (increase(streamer_drift_events_total"
                        f"{{{SEL}}}{RATE}))",
                        "{{signal}} {{level}}",
                    )
                ],
                bars=True,
            )
        )
    )
    d = (
        d.with_row(db.Row("Features"))
        .with_panel(
            big(
                "Features in alarm",
                "Share of the watched features with a drift statistic at alarm level "
                "(alert: more than 30 %).",
                f"sum({feature_level} == bool 2) / count({feature_level})",
                unit="percentunit",
                w=6,
                thresholds=steps((None, GREEN), (0.0001, YELLOW), (0.3, RED)),
            ).height(9)
        )
        .with_panel(
            table.Panel()
            .title("Feature drift statistics")
            .description(
                "Latest value of each statistic of each feature against the reference, with "
                "its level (ok, warning, alarm) as the thresholds of drift.thresholds set it."
            )
            .datasource(DS)
            .targets(
                [
                    q(
                        "max by (topic, partition, feature, statistic) "
                        f'(streamer_drift_statistic{{{SEL}, signal="feature"}})',
                        instant=True,
                        ref="A",
                    ),
                    q(
                        "max by (topic, partition, feature, statistic) "
                        f'(streamer_drift_level{{{SEL}, signal="feature"}})',
                        instant=True,
                        ref="B",
                    ),
                ]
            )
            .with_transformation(dm.DataTransformerConfig(id_val="merge", options={}))
            .with_transformation(
                dm.DataTransformerConfig(
                    id_val="organize",
                    options={
                        "excludeByName": {"Time": True},
                        "renameByName": {"Value #A": "value", "Value #B": "level"},
                    },
                )
            )
            .override_by_name(
                "level",
                [
                    dm.DynamicConfigValue(
                        id_val="custom.cellOptions", value={"type": "color-background"}
                    ),
                    dm.DynamicConfigValue(
                        id_val="mappings",
                        value=[m.to_json() for m in levels(["ok", "warning", "alarm"])],
                    ),
                ],
            )
            .decimals(3)
            .span(18)
            .height(9)
        )
        .with_panel(
            statushistory.Panel()
            .title("Feature drift level over time")
            .description("Highest level of each feature's statistics: ok, warning, alarm.")
            .datasource(DS)
            .with_target(
                q(
                    f'max by (feature) (streamer_drift_level{{{SEL}, signal="feature"}})',
                    "{{feature}}",
                )
            )
            .mappings(levels(["ok", "warning", "alarm"]))
            .thresholds(steps((None, GREEN), (1, YELLOW), (2, RED)))
            .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
            .show_value(cm.VisibilityMode.NEVER)
            .span(24)
            .height(8)
        )
        .with_panel(
            ts(
                "PSI by feature",
                "Population stability index of each feature; lines at the default warning "
                "and alarm thresholds (0.1, 0.25).",
                [
                    q(
                        "max by (feature) (streamer_drift_statistic"
                        f'{{{SEL}, signal="feature", statistic="psi"}})',
                        "{{feature}}",
                    )
                ],
                thresholds=steps((None, GREEN), (0.1, YELLOW), (0.25, RED)),
                min_val=0,
            )
        )
        .with_panel(
            ts(
                "Jensen-Shannon distance by feature",
                "Jensen-Shannon distance of each feature's binned distribution to the reference.",
                [
                    q(
                        "max by (feature) (streamer_drift_statistic"
                        f'{{{SEL}, signal="feature", statistic="js"}})',
                        "{{feature}}",
                    )
                ],
                min_val=0,
            )
        )
    )
    d = (
        d.with_row(db.Row("Predictions, labels and schema"))
        .with_panel(
            ts(
                "Prediction drift",
                "Statistics of the predicted classes (or values) against the reference.",
                [
                    q(
                        "max by (statistic) (streamer_drift_statistic"
                        f'{{{SEL}, signal="prediction"}})',
                        "{{statistic}}",
                    )
                ],
                w=8,
                min_val=0,
            )
        )
        .with_panel(
            ts(
                "Label drift",
                "Statistics of the true classes (or targets) against the reference.",
                [
                    q(
                        f'max by (statistic) (streamer_drift_statistic{{{SEL}, signal="label"}})',
                        "{{statistic}}",
                    )
                ],
                w=8,
                min_val=0,
            )
        )
        .with_panel(
            ts(
                "Schema drift",
                "Shares of records with new, missing or retyped fields (new fields share one "
                "series, (new)).",
                [
                    q(
                        "max by (feature, statistic) (streamer_drift_statistic"
                        f'{{{SEL}, signal="schema"}})',
                        "{{feature}} {{statistic}}",
                    )
                ],
                unit="percentunit",
                w=8,
                min_val=0,
            )
        )
        .with_panel(
            ts(
                "Statistics at alarm level",
                "Drift statistics currently at alarm level, by signal.",
                [
                    q(
                        f"sum by (signal) (streamer_drift_alarming{{{SEL}}})",
                        "{{signal}}",
                    )
                ],
                w=24,
                h=6,
                min_val=0,
            )
        )
    )
    return d


DASHBOARDS = {"streamer-overview.json": overview, "streamer-drift.json": drift}


def render(builder: Builder[Any]) -> str:
    """The dashboard's JSON, as committed (sorted keys, two-space indent, final newline)."""
    data = json.loads(JSONEncoder().encode(builder.build()))
    _finish(data)
    return json.dumps(data, indent=2, sort_keys=True) + "\n"


def _finish(data: dict[str, Any]) -> None:
    """What the SDK leaves to the caller: ids, and a few fields Grafana's schema refuses."""
    for panel_id, panel in enumerate(data.get("panels", []), 1):
        panel["id"] = panel_id
        for i, target in enumerate(panel.get("targets", [])):
            target["refId"] = target.get("refId") or chr(ord("A") + i)
    for variable in data.get("templating", {}).get("list", []):
        # The SDK writes the interval variables' auto* fields on every variable; Grafana's
        # VariableModel (11.6) has them for none.
        if variable.get("type") != "interval":
            for key in ("auto", "auto_count", "auto_min"):
                variable.pop(key, None)
    for annotation in data.get("annotations", {}).get("list", []):
        # The Prometheus datasource reads an annotation's query from its target (a top-level
        # expr is the legacy form, migrated on load), and labels it with titleFormat/tagKeys.
        expr = annotation.pop("expr", None)
        if expr is not None:
            annotation["target"] = {
                "datasource": annotation["datasource"],
                "expr": expr,
                "refId": "Anno",
            }
            annotation["titleFormat"] = "{{signal}} drift alarm"
            annotation["tagKeys"] = "topic,partition,signal"


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="only compare, write nothing")
    args = parser.parse_args(argv)
    stale = []
    for name, build in DASHBOARDS.items():
        text = render(build())
        path = OUT / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            path.write_text(text)
            print(f"wrote {path}", file=sys.stderr)
    if stale:
        print(f"out of date (run {__file__}): {', '.join(stale)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
