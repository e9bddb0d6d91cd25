// luahealth evaluates Argo CD health checks the way the Argo CD application
// controller does: a fresh gopher-lua state per object with only the base,
// table and package libraries opened (Argo CD's default, without
// useOpenLibs), the object as the global `obj`, a one-second deadline, and
// the returned table read as {status, message}.
//
//	luahealth test <dir>                  every <dir>/**/health.lua against its health_test.yaml
//	luahealth run <health.lua> <file>...  one JSON line {"file","status","message"} per object (YAML or JSON)
package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	lua "github.com/yuin/gopher-lua"
	"sigs.k8s.io/yaml"
)

type healthStatus struct {
	Status  string `json:"status"`
	Message string `json:"message"`
}

// Argo CD maps any other status string to Unknown with this message.
var validStatus = map[string]bool{"Unknown": true, "Progressing": true, "Suspended": true, "Healthy": true, "Degraded": true, "Missing": true}

func main() {
	if len(os.Args) < 3 {
		fmt.Fprintln(os.Stderr, "usage: luahealth test <dir> | luahealth run <health.lua> <object file>...")
		os.Exit(2)
	}
	var err error
	switch os.Args[1] {
	case "test":
		err = testTree(os.Args[2])
	case "run":
		err = runFiles(os.Args[2], os.Args[3:])
	default:
		err = fmt.Errorf("unknown mode %q", os.Args[1])
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "luahealth:", err)
		os.Exit(1)
	}
}

func readObject(path string) (map[string]any, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	obj := map[string]any{}
	// YAML is a superset of JSON: one decoder for both (numbers become float64,
	// which gopher-lua holds as LNumber like Argo CD's int64 values).
	if err := yaml.Unmarshal(raw, &obj); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return obj, nil
}

func toLua(l *lua.LState, v any) lua.LValue {
	switch x := v.(type) {
	case nil:
		return lua.LNil
	case bool:
		return lua.LBool(x)
	case float64:
		return lua.LNumber(x)
	case int64:
		return lua.LNumber(x)
	case int:
		return lua.LNumber(x)
	case string:
		return lua.LString(x)
	case json.Number:
		return lua.LString(x)
	case []any:
		t := l.CreateTable(len(x), 0)
		for _, e := range x {
			t.Append(toLua(l, e))
		}
		return t
	case map[string]any:
		t := l.CreateTable(0, len(x))
		for k, e := range x {
			t.RawSetString(k, toLua(l, e))
		}
		return t
	}
	return lua.LNil
}

func evaluate(script string, obj map[string]any) (healthStatus, error) {
	l := lua.NewState(lua.Options{SkipOpenLibs: true})
	defer l.Close()
	for _, lib := range []struct {
		name string
		open lua.LGFunction
	}{{lua.LoadLibName, lua.OpenPackage}, {lua.BaseLibName, lua.OpenBase}, {lua.TabLibName, lua.OpenTable}} {
		if err := l.CallByParam(lua.P{Fn: l.NewFunction(lib.open), NRet: 0, Protect: true}, lua.LString(lib.name)); err != nil {
			return healthStatus{}, err
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	l.SetContext(ctx)
	l.SetGlobal("obj", toLua(l, obj))
	if err := l.DoString(script); err != nil {
		return healthStatus{}, err
	}
	ret := l.Get(-1)
	if ret.Type() == lua.LTNil {
		return healthStatus{}, nil
	}
	t, ok := ret.(*lua.LTable)
	if !ok {
		return healthStatus{}, fmt.Errorf("expect table output from Lua script, not %s", ret.Type())
	}
	hs := healthStatus{Status: lua.LVAsString(t.RawGetString("status")), Message: lua.LVAsString(t.RawGetString("message"))}
	if !validStatus[hs.Status] {
		return healthStatus{Status: "Unknown", Message: "Lua returned an invalid health status"}, nil
	}
	return hs, nil
}

func runFiles(scriptPath string, files []string) error {
	script, err := os.ReadFile(scriptPath)
	if err != nil {
		return err
	}
	out := json.NewEncoder(os.Stdout)
	for _, f := range files {
		obj, err := readObject(f)
		if err != nil {
			return err
		}
		hs, err := evaluate(string(script), obj)
		if err != nil {
			return fmt.Errorf("%s: %w", f, err)
		}
		if err := out.Encode(map[string]string{"file": f, "status": hs.Status, "message": hs.Message}); err != nil {
			return err
		}
	}
	return nil
}

type testFile struct {
	Tests []struct {
		InputPath    string       `json:"inputPath"`
		HealthStatus healthStatus `json:"healthStatus"`
	} `json:"tests"`
}

// testTree follows Argo CD's resource_customizations layout: a health.lua,
// a health_test.yaml naming inputs relative to its folder, exact matches of
// status and message.
func testTree(root string) error {
	passed, failed := 0, 0
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() || d.Name() != "health.lua" {
			return err
		}
		dir := filepath.Dir(path)
		script, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		raw, err := os.ReadFile(filepath.Join(dir, "health_test.yaml"))
		if err != nil {
			return err
		}
		var tf testFile
		if err := yaml.Unmarshal(raw, &tf); err != nil {
			return fmt.Errorf("%s/health_test.yaml: %w", dir, err)
		}
		if len(tf.Tests) == 0 {
			return fmt.Errorf("%s/health_test.yaml has no tests", dir)
		}
		for _, tc := range tf.Tests {
			name := filepath.Join(dir, tc.InputPath)
			obj, err := readObject(name)
			if err != nil {
				return err
			}
			got, err := evaluate(string(script), obj)
			if err == nil && got != tc.HealthStatus {
				err = fmt.Errorf("got %s %q, want %s %q", got.Status, got.Message, tc.HealthStatus.Status, tc.HealthStatus.Message)
			}
			if err != nil {
				failed++
				fmt.Printf("FAIL %s: %v\n", name, err)
			} else {
				passed++
				fmt.Printf("ok   %s: %s\n", name, got.Status)
			}
		}
		return nil
	})
	if err != nil {
		return err
	}
	fmt.Printf("%d passed, %d failed\n", passed, failed)
	if passed == 0 {
		return errors.New("no health checks found under " + root)
	}
	if failed > 0 {
		return errors.New("health checks disagree with health_test.yaml")
	}
	return nil
}
