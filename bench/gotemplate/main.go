// Renders an Ollama TEMPLATE with Go's own text/template, as Ollama does, for kit's checks.
// usage: go run . TEMPLATE_FILE < cases.json   (cases: [{"System": "...", "Messages": [{"Role", "Content"}]}])
// prints a JSON list of the rendered strings. Built by tests/test_ollama.py and bench/ollama_go_template.py.
package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type Message struct {
	Role    string
	Content string
}

type Values struct {
	System   string
	Messages []*Message
	Tools    []any
	Response string
	Prompt   string
}

func main() {
	text, err := os.ReadFile(os.Args[1])
	if err != nil {
		panic(err)
	}
	var cases []Values
	if err := json.NewDecoder(os.Stdin).Decode(&cases); err != nil {
		panic(err)
	}
	tmpl := template.Must(template.New("modelfile").Parse(string(text)))
	outs := []string{}
	for _, values := range cases {
		var b strings.Builder
		if err := tmpl.Execute(&b, values); err != nil {
			panic(err)
		}
		outs = append(outs, b.String())
	}
	if err := json.NewEncoder(os.Stdout).Encode(outs); err != nil {
		panic(err)
	}
}
