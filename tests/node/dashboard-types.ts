// The type a shipped dashboard's JSON must satisfy: Grafana 11.6's own Dashboard type
// (@grafana/schema), with each panel's options and custom field config typed by that panel
// plugin's own schema, so that `tsc --strict` refuses unknown keys and wrong types all the
// way down. tests/unit/test_dashboards.py writes each dashboard's JSON into a .ts file as
// `export const x = <json> satisfies StreamerDashboard;` and runs tsc on it.
import type {
  AnnotationQuery,
  Dashboard,
  DataQuery,
  FieldConfig,
  FieldConfigSource,
  Panel,
  RowPanel,
} from "@grafana/schema";
import type * as stat from "@grafana/schema/dist/esm/raw/composable/stat/panelcfg/x/StatPanelCfg_types.gen.js";
import type * as statetimeline from "@grafana/schema/dist/esm/raw/composable/statetimeline/panelcfg/x/StateTimelinePanelCfg_types.gen.js";
import type * as statushistory from "@grafana/schema/dist/esm/raw/composable/statushistory/panelcfg/x/StatusHistoryPanelCfg_types.gen.js";
import type * as table from "@grafana/schema/dist/esm/raw/composable/table/panelcfg/x/TablePanelCfg_types.gen.js";
import type * as timeseries from "@grafana/schema/dist/esm/raw/composable/timeseries/panelcfg/x/TimeSeriesPanelCfg_types.gen.js";

// Dashboard JSON holds enum members as their string values: accept those values where the
// types say "string enum" (numeric enums already accept numbers).
export type Json<T> = T extends string
  ? `${T}`
  : T extends readonly (infer E)[]
    ? Json<E>[]
    : T extends object
      ? { [K in keyof T]: Json<T[K]> }
      : T;

// @grafana/schema 11.6 ships no Prometheus query type (Prometheus is not a composable plugin
// there): these are the fields of the Prometheus datasource's PromQuery and of its annotation
// options that the dashboards use.
export interface PromQuery extends DataQuery {
  expr: string;
  legendFormat?: string;
  instant?: boolean;
  range?: boolean;
  format?: "time_series" | "table" | "heatmap";
  interval?: string;
}

export interface PromAnnotation extends AnnotationQuery<PromQuery> {
  titleFormat?: string;
  textFormat?: string;
  tagKeys?: string;
  useValueForTime?: boolean;
}

// Panel's own fieldConfig types `custom` as any: type it by the panel's FieldConfig.
type FieldConfigOf<Custom> = Omit<FieldConfigSource, "defaults"> & {
  defaults: Omit<FieldConfig, "custom"> & { custom?: Custom };
};

type Typed<Type extends string, Options, Custom> = Omit<
  Panel,
  "type" | "options" | "targets" | "fieldConfig"
> & {
  type: Type;
  options?: Options;
  fieldConfig?: FieldConfigOf<Custom>;
  targets: PromQuery[];
};

export type StreamerPanel =
  | Typed<"timeseries", timeseries.Options, timeseries.FieldConfig>
  | Typed<"stat", stat.Options, Record<string, never>>
  | Typed<"table", table.Options, table.FieldConfig>
  | Typed<"state-timeline", statetimeline.Options, statetimeline.FieldConfig>
  | Typed<"status-history", statushistory.Options, statushistory.FieldConfig>;

export type StreamerDashboard = Json<
  Omit<Dashboard, "panels" | "annotations"> & {
    panels: Array<StreamerPanel | (RowPanel & { type: "row" })>;
    annotations: { list: PromAnnotation[] };
  }
>;
