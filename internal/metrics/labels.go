package metrics

import (
	"cmp"
	"slices"
	"strconv"
	"strings"

	dto "github.com/prometheus/client_model/go"
)

// WorkerLabel is the label every worker series carries: the worker's slot.
// A user label of the same name becomes exported_worker, as Prometheus
// renames a target's label that collides with one it attaches
// (honor_labels: false).
const WorkerLabel = "worker"

// exportedPrefix is what a colliding user label gets, repeated until the
// name is free, as Prometheus does.
const exportedPrefix = "exported_"

// labelKey is a canonical key of a label set, in any order.
func labelKey(labels []*dto.LabelPair) string {
	if len(labels) == 0 {
		return ""
	}
	ls := slices.Clone(labels)
	sortLabels(ls)
	var b strings.Builder
	for _, lp := range ls {
		b.WriteString(lp.GetName())
		b.WriteByte(0xff)
		b.WriteString(lp.GetValue())
		b.WriteByte(0xfe)
	}
	return b.String()
}

// labelString shows a label set as a person writes it: {a="1",b="2"}.
func labelString(labels []*dto.LabelPair) string {
	var b strings.Builder
	b.WriteByte('{')
	for i, lp := range labels {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(lp.GetName())
		b.WriteByte('=')
		b.WriteString(strconv.Quote(lp.GetValue()))
	}
	b.WriteByte('}')
	return b.String()
}

func sortLabels(ls []*dto.LabelPair) {
	slices.SortFunc(ls, func(a, b *dto.LabelPair) int { return strings.Compare(a.GetName(), b.GetName()) })
}

// userLabels renames a user label that collides with [WorkerLabel] to the
// first of exported_worker, exported_exported_worker… not taken, returning the labels sorted
// by name, without the worker label; the input is not modified.
func userLabels(labels []*dto.LabelPair) []*dto.LabelPair {
	ls := slices.Clone(labels)
	has := func(n string) int {
		return slices.IndexFunc(ls, func(lp *dto.LabelPair) bool { return lp.GetName() == n })
	}
	if i := has(WorkerLabel); i >= 0 {
		name := exportedPrefix + WorkerLabel
		for has(name) >= 0 {
			name = exportedPrefix + name
		}
		v := ls[i].GetValue()
		ls[i] = &dto.LabelPair{Name: &name, Value: &v}
	}
	sortLabels(ls)
	return ls
}

// withWorker returns user labels (sorted, from [userLabels]) with the
// worker label added in its sorted place.
func withWorker(user []*dto.LabelPair, worker *dto.LabelPair) []*dto.LabelPair {
	out := make([]*dto.LabelPair, 0, len(user)+1)
	i, _ := slices.BinarySearchFunc(user, WorkerLabel, func(lp *dto.LabelPair, n string) int {
		return strings.Compare(lp.GetName(), n)
	})
	out = append(out, user[:i]...)
	out = append(out, worker)
	return append(out, user[i:]...)
}

// withoutWorker returns output labels without the worker label.
func withoutWorker(labels []*dto.LabelPair) []*dto.LabelPair {
	return slices.DeleteFunc(slices.Clone(labels), func(lp *dto.LabelPair) bool { return lp.GetName() == WorkerLabel })
}

// compareLabels orders sorted label sets as a registry orders series.
func compareLabels(a, b []*dto.LabelPair) int {
	for i := range min(len(a), len(b)) {
		if c := cmp.Or(strings.Compare(a[i].GetName(), b[i].GetName()), strings.Compare(a[i].GetValue(), b[i].GetValue())); c != 0 {
			return c
		}
	}
	return cmp.Compare(len(a), len(b))
}
