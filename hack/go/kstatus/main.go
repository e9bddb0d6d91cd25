// kstatus prints what sigs.k8s.io/cli-utils/pkg/kstatus/status.Compute makes
// of Kubernetes objects, one JSON line per object:
//
//	kstatus <file>...   each file one object (JSON or YAML), or a List
//	kstatus -           the same from stdin
//
// Output: {"kind","namespace","name","status","message"} with status one of
// InProgress, Failed, Current, Terminating, NotFound, Unknown.
package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/cli-utils/pkg/kstatus/status"
	"sigs.k8s.io/yaml"
)

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: kstatus <file>... | kstatus -")
		os.Exit(2)
	}
	out := json.NewEncoder(os.Stdout)
	for _, f := range os.Args[1:] {
		if err := computeFile(f, out); err != nil {
			fmt.Fprintf(os.Stderr, "kstatus: %s: %v\n", f, err)
			os.Exit(1)
		}
	}
}

func computeFile(path string, out *json.Encoder) error {
	var raw []byte
	var err error
	if path == "-" {
		raw, err = io.ReadAll(os.Stdin)
	} else {
		raw, err = os.ReadFile(path)
	}
	if err != nil {
		return err
	}
	// Through JSON and the unstructured decoder so integers are int64, as in
	// a client's cache: kstatus reads generation and observedGeneration with
	// NestedInt64 and would fail on float64.
	js, err := yaml.YAMLToJSON(raw)
	if err != nil {
		return err
	}
	u := &unstructured.Unstructured{}
	if err := u.UnmarshalJSON(js); err != nil {
		return err
	}
	objs := []unstructured.Unstructured{*u}
	if u.IsList() {
		list, err := u.ToList()
		if err != nil {
			return err
		}
		objs = list.Items
	}
	for i := range objs {
		o := &objs[i]
		res, err := status.Compute(o)
		if err != nil {
			return fmt.Errorf("%s %s/%s: %w", o.GetKind(), o.GetNamespace(), o.GetName(), err)
		}
		if err := out.Encode(map[string]string{
			"kind": o.GetKind(), "namespace": o.GetNamespace(), "name": o.GetName(),
			"status": res.Status.String(), "message": res.Message,
		}); err != nil {
			return err
		}
	}
	return nil
}
