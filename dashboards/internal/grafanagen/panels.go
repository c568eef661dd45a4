package grafanagen

//lint:file-ignore SA1019 The SDK prefers dashboardv2, Grafana 12's experimental resource format, which
// Grafana 11 cannot import; the classic dashboard model imports into both.

import (
	"fmt"

	"github.com/grafana/grafana-foundation-sdk/go/bargauge"
	"github.com/grafana/grafana-foundation-sdk/go/cog"
	"github.com/grafana/grafana-foundation-sdk/go/cog/variants"
	"github.com/grafana/grafana-foundation-sdk/go/common"
	"github.com/grafana/grafana-foundation-sdk/go/dashboard"
	"github.com/grafana/grafana-foundation-sdk/go/prometheus"
	"github.com/grafana/grafana-foundation-sdk/go/stat"
	"github.com/grafana/grafana-foundation-sdk/go/table"
	"github.com/grafana/grafana-foundation-sdk/go/timeseries"
	"github.com/grafana/grafana-foundation-sdk/go/units"
)

// datasource is the dashboards' data source variable, so that a dashboard
// works against whichever Prometheus the user picks, never a fixed uid.
var datasource = common.DataSourceRef{Type: ptr("prometheus"), Uid: ptr("${datasource}")}

// sel selects the targets picked in the job and instance variables.
const sel = `job=~"$job", instance=~"$instance"`

func ptr[T any](v T) *T { return &v }

// target is one Prometheus query of a panel.
type target struct {
	expr    string
	legend  string
	instant bool // one value at the end of the range, not a series
	table   bool // table format: one row per series, labels as columns
}

func targets(ts []target) []cog.Builder[variants.Dataquery] {
	out := make([]cog.Builder[variants.Dataquery], len(ts))
	for i, t := range ts {
		q := prometheus.NewDataqueryBuilder().
			Datasource(datasource).
			RefId(string(rune('A' + i))).
			Expr(t.expr)
		if t.legend != "" {
			q.LegendFormat(t.legend)
		}
		if t.instant {
			q.Instant()
		} else {
			q.Range()
		}
		if t.table {
			q.Format(prometheus.PromQueryFormatTable)
		}
		out[i] = q
	}
	return out
}

// spec is what every kfw panel states: what it shows, in which unit, what
// counts as bad, and where it sits.
type spec struct {
	title       string
	description string
	unit        string
	thresholds  *dashboard.ThresholdsConfigBuilder
	width       uint32 // of 24 columns
	height      uint32
	targets     []target
}

// panelBuilder is the part the SDK's panel builders have in common.
type panelBuilder[T any] interface {
	Title(string) T
	Description(string) T
	Datasource(common.DataSourceRef) T
	Unit(string) T
	Thresholds(cog.Builder[dashboard.ThresholdsConfig]) T
	Span(uint32) T
	Height(uint32) T
	Targets([]cog.Builder[variants.Dataquery]) T
}

func apply[T panelBuilder[T]](b T, s spec) T {
	th := s.thresholds
	if th == nil {
		th = neutral()
	}
	return b.Title(s.title).
		Description(s.description).
		Datasource(datasource).
		Unit(s.unit).
		Thresholds(th).
		Span(s.width).
		Height(s.height).
		Targets(targets(s.targets))
}

// step is a threshold: from value on, the color.
type step struct {
	value float64
	color string
}

// thresholds starts at base and changes color at each step.
func thresholds(base string, steps ...step) *dashboard.ThresholdsConfigBuilder {
	out := []dashboard.Threshold{{Color: base}}
	for _, s := range steps {
		out = append(out, dashboard.Threshold{Value: ptr(s.value), Color: s.color})
	}
	return dashboard.NewThresholdsConfigBuilder().Mode(dashboard.ThresholdsModeAbsolute).Steps(out)
}

// neutral is for values where no level is good or bad by itself.
func neutral() *dashboard.ThresholdsConfigBuilder { return thresholds("blue") }

// anyIsBad is for counts where anything above zero needs a look.
func anyIsBad() *dashboard.ThresholdsConfigBuilder {
	return thresholds("green", step{0.000001, "red"})
}

func timeseriesPanel(s spec) *timeseries.PanelBuilder {
	return apply(timeseries.NewPanelBuilder(), s).
		Min(0).
		LineWidth(1).
		FillOpacity(10).
		ShowPoints(common.VisibilityModeNever).
		Legend(common.NewVizLegendOptionsBuilder().
			ShowLegend(true).
			DisplayMode(common.LegendDisplayModeTable).
			Placement(common.LegendPlacementBottom).
			Calcs([]string{"mean", "max", "lastNotNull"})).
		Tooltip(common.NewVizTooltipOptionsBuilder().
			Mode(common.TooltipDisplayModeMulti).
			Sort(common.SortOrderDescending))
}

// withThresholdLines draws the panel's thresholds as dashed lines: where
// an alert fires.
func withThresholdLines(p *timeseries.PanelBuilder) *timeseries.PanelBuilder {
	return p.ThresholdsStyle(common.NewGraphThresholdsStyleConfigBuilder().
		Mode(common.GraphThresholdsStyleModeDashed))
}

func statPanel(s spec) *stat.PanelBuilder {
	return apply(stat.NewPanelBuilder(), s).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		GraphMode(common.BigValueGraphModeNone).
		ColorMode(common.BigValueColorModeBackground).
		TextMode(common.BigValueTextModeValueAndName).
		JustifyMode(common.BigValueJustifyModeAuto).
		Orientation(common.VizOrientationAuto)
}

func barGaugePanel(s spec) *bargauge.PanelBuilder {
	return apply(bargauge.NewPanelBuilder(), s).
		ReduceOptions(common.NewReduceDataOptionsBuilder().Calcs([]string{"lastNotNull"})).
		DisplayMode(common.BarGaugeDisplayModeGradient).
		Orientation(common.VizOrientationHorizontal).
		Min(0)
}

func tablePanel(s spec) *table.PanelBuilder {
	return apply(table.NewPanelBuilder(), s).
		ShowHeader(true).
		CellHeight(common.TableCellHeightSm)
}

// states maps 0 and 1 to words and colors, for up-or-down values.
func states(zero, one string) []dashboard.ValueMapping {
	return []dashboard.ValueMapping{{ValueMap: &dashboard.ValueMap{
		Type: dashboard.MappingTypeValueToText,
		Options: map[string]dashboard.ValueMappingResult{
			"0": {Text: ptr(zero), Color: ptr("red"), Index: ptr(int32(0))},
			"1": {Text: ptr(one), Color: ptr("green"), Index: ptr(int32(1))},
		},
	}}}
}

// upDownThresholds colors 0 red and 1 green.
func upDownThresholds() *dashboard.ThresholdsConfigBuilder {
	return thresholds("red", step{1, "green"})
}

// organize hides and renames the columns of a table made of instant
// queries; columns are "Value #<refId>" for each query.
func organize(hide []string, rename map[string]string, order []string) dashboard.DataTransformerConfig {
	excluded := map[string]bool{}
	for _, h := range hide {
		excluded[h] = true
	}
	index := map[string]int{}
	for i, name := range order {
		index[name] = i
	}
	return dashboard.DataTransformerConfig{
		Id: "organize",
		Options: map[string]any{
			"excludeByName": excluded,
			"renameByName":  rename,
			"indexByName":   index,
		},
	}
}

// mergeTables joins the tables of several instant queries on their labels.
func mergeTables() dashboard.DataTransformerConfig {
	return dashboard.DataTransformerConfig{Id: "merge", Options: map[string]any{}}
}

// columnUnit gives one table column its own unit.
func columnUnit(unit string) []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{{Id: "unit", Value: unit}}
}

// Variables shared by the dashboards.
func datasourceVariable() *dashboard.DatasourceVariableBuilder {
	return dashboard.NewDatasourceVariableBuilder("datasource").
		Label("Data source").
		Type("prometheus")
}

func queryVariable(name, label, query string, multi bool) *dashboard.QueryVariableBuilder {
	return dashboard.NewQueryVariableBuilder(name).
		Label(label).
		Datasource(datasource).
		Query(dashboard.StringOrMap{String: ptr(query)}).
		Definition(query).
		Refresh(dashboard.VariableRefreshOnTimeRangeChanged).
		Sort(dashboard.VariableSortNaturalAsc).
		Multi(multi).
		IncludeAll(true).
		AllValue(".+")
}

func jobVariable() *dashboard.QueryVariableBuilder {
	return queryVariable("job", "Job", "label_values(kfw_up, job)", false)
}

func instanceVariable() *dashboard.QueryVariableBuilder {
	return queryVariable("instance", "Instance", `label_values(kfw_up{job=~"$job"}, instance)`, true)
}

// Annotations shared by the dashboards. The 2m window with Grafana's
// default 1m annotation step sees every change at least once when targets
// are scraped at least once a minute.
func rulesetChanges() *dashboard.AnnotationQueryBuilder {
	return dashboard.NewAnnotationQueryBuilder().
		Name("Ruleset changes").
		Datasource(datasource).
		Enable(true).
		IconColor("blue").
		Expr(fmt.Sprintf(`changes(kfw_ruleset_generation{%s}[2m]) > 0`, sel)).
		TitleFormat("kfw ruleset changed").
		TextFormat("{{instance}}: the ruleset generation changed")
}

func moduleReloads() *dashboard.AnnotationQueryBuilder {
	return dashboard.NewAnnotationQueryBuilder().
		Name("Module reloads").
		Datasource(datasource).
		Enable(true).
		IconColor("orange").
		Expr(fmt.Sprintf(`count without (module_instance, version, abi_version) (count_over_time(kfw_module_info{%s}[2m])) > 1`, sel)).
		TitleFormat("kfw module reloaded").
		TextFormat("{{instance}}: a new module instance; kernel counters restarted from zero")
}

// links lead from each kfw dashboard to the others, keeping time and
// variables.
func links() *dashboard.DashboardLinkBuilder {
	return dashboard.NewDashboardLinkBuilder("kfw dashboards").
		Type(dashboard.DashboardLinkTypeDashboards).
		Tags([]string{"kfw"}).
		AsDropdown(false).
		IncludeVars(true).
		KeepTime(true)
}

// newDashboard starts a kfw dashboard with the shared settings.
func newDashboard(uid, title, description string) *dashboard.DashboardBuilder {
	return dashboard.NewDashboardBuilder(title).
		Uid(uid).
		Description(description).
		Tags([]string{"kfw", "firewall"}).
		Editable().
		Tooltip(dashboard.DashboardCursorSyncCrosshair).
		Refresh("1m").
		Time("now-6h", "now").
		Timezone(common.TimeZoneBrowser).
		Link(links()).
		WithVariable(datasourceVariable()).
		WithVariable(jobVariable()).
		WithVariable(instanceVariable()).
		Annotation(rulesetChanges()).
		Annotation(moduleReloads())
}

// finish numbers the panels and rows, which Grafana needs unique, and
// leaves the annotation toggles and links where every Grafana version shows
// them (the SDK puts them in Grafana 12's controls menu).
func finish(d dashboard.Dashboard) dashboard.Dashboard {
	var id uint32
	for _, p := range d.Panels {
		id++
		switch {
		case p.Panel != nil:
			p.Panel.Id = ptr(id)
		case p.RowPanel != nil:
			p.RowPanel.Id = id
			for i := range p.RowPanel.Panels {
				id++
				p.RowPanel.Panels[i].Id = ptr(id)
			}
		}
	}
	for i := range d.Annotations.List {
		d.Annotations.List[i].Placement = nil
	}
	for i := range d.Links {
		d.Links[i].Placement = nil
	}
	return d
}

// Unit names used by the panels, in one place.
const (
	unitPacketsPerSecond = units.PacketsPerSecond
	unitBytesPerSecond   = units.BytesPerSecondSI
	unitBytes            = units.BytesSI
	unitEventsPerSecond  = units.EventsPerSecond
	unitCountsPerSecond  = units.CountsPerSecond
	unitSeconds          = units.Seconds
	unitDurationFromSecs = units.DurationSeconds
	unitShare            = units.PercentUnit
	unitCount            = units.Short
	unitNone             = units.NoUnit
)

// dashboardPanel is any panel builder.
type dashboardPanel = cog.Builder[dashboard.Panel]

// redSeries paints the matched series red: drops.
func redSeries() []dashboard.DynamicConfigValue {
	return []dashboard.DynamicConfigValue{{Id: "color", Value: map[string]any{"mode": "fixed", "fixedColor": "red"}}}
}
