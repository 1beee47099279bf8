package client

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"strings"
	"testing"
)

// TestAPIBasicTypes keeps the exported API bindable by gomobile: every
// exported function, method, struct field and interface method uses only
// basic types, []byte, error, and the package's own exported types.
func TestAPIBasicTypes(t *testing.T) {
	fset := token.NewFileSet()
	pkgs, err := parser.ParseDir(fset, ".", func(fi os.FileInfo) bool {
		return !strings.HasSuffix(fi.Name(), "_test.go")
	}, 0)
	if err != nil {
		t.Fatal(err)
	}
	allowed := map[string]bool{"string": true, "int": true, "int64": true, "int32": true, "bool": true, "error": true, "float64": true}
	own := map[string]bool{}
	for _, f := range pkgs["client"].Files {
		for _, d := range f.Decls {
			if g, ok := d.(*ast.GenDecl); ok && g.Tok == token.TYPE {
				for _, s := range g.Specs {
					if ts := s.(*ast.TypeSpec); ts.Name.IsExported() {
						own[ts.Name.Name] = true
					}
				}
			}
		}
	}
	var check func(where string, e ast.Expr)
	check = func(where string, e ast.Expr) {
		switch x := e.(type) {
		case *ast.Ident:
			if !allowed[x.Name] && !own[x.Name] {
				t.Errorf("%s: type %s is not bindable", where, x.Name)
			}
		case *ast.StarExpr:
			if id, ok := x.X.(*ast.Ident); !ok || !own[id.Name] {
				t.Errorf("%s: pointer to a foreign type", where)
			}
		case *ast.ArrayType:
			if id, ok := x.Elt.(*ast.Ident); !ok || id.Name != "byte" || x.Len != nil {
				t.Errorf("%s: only []byte slices are bindable", where)
			}
		default:
			t.Errorf("%s: type %T is not bindable", where, e)
		}
	}
	fields := func(where string, fl *ast.FieldList) {
		if fl == nil {
			return
		}
		for _, f := range fl.List {
			check(where, f.Type)
		}
	}
	for _, f := range pkgs["client"].Files {
		for _, d := range f.Decls {
			switch d := d.(type) {
			case *ast.FuncDecl:
				if !d.Name.IsExported() {
					continue
				}
				if d.Recv != nil {
					recv := d.Recv.List[0].Type
					if s, ok := recv.(*ast.StarExpr); ok {
						recv = s.X
					}
					if id, ok := recv.(*ast.Ident); !ok || !own[id.Name] {
						continue // methods of unexported types are not part of the API
					}
				}
				fields(d.Name.Name, d.Type.Params)
				fields(d.Name.Name, d.Type.Results)
			case *ast.GenDecl:
				for _, s := range d.Specs {
					switch s := s.(type) {
					case *ast.TypeSpec:
						if !s.Name.IsExported() {
							continue
						}
						switch tt := s.Type.(type) {
						case *ast.StructType:
							for _, f := range tt.Fields.List {
								for _, n := range f.Names {
									if n.IsExported() {
										check(s.Name.Name+"."+n.Name, f.Type)
									}
								}
							}
						case *ast.InterfaceType:
							for _, m := range tt.Methods.List {
								ft := m.Type.(*ast.FuncType)
								fields(s.Name.Name, ft.Params)
								fields(s.Name.Name, ft.Results)
							}
						default:
							t.Errorf("exported type %s is neither a struct nor an interface", s.Name.Name)
						}
					case *ast.ValueSpec:
						for _, n := range s.Names {
							if n.IsExported() && s.Type != nil {
								check(n.Name, s.Type)
							}
						}
					}
				}
			}
		}
	}
}
