package report

import (
	"encoding/xml"
	"fmt"
	"io"
	"strings"
)

// JUnit XML as CI servers read it (Jenkins' junit-4 schema, which GitLab and
// the JUnit report actions accept): one test case per judged object, failed
// when one of its results fails the run, and one test case in error per
// input that could not be read.
type junitSuites struct {
	XMLName  xml.Name     `xml:"testsuites"`
	Name     string       `xml:"name,attr"`
	Tests    int          `xml:"tests,attr"`
	Failures int          `xml:"failures,attr"`
	Errors   int          `xml:"errors,attr"`
	Suites   []junitSuite `xml:"testsuite"`
}

type junitSuite struct {
	Name     string      `xml:"name,attr"`
	Tests    int         `xml:"tests,attr"`
	Failures int         `xml:"failures,attr"`
	Errors   int         `xml:"errors,attr"`
	Time     string      `xml:"time,attr"`
	Cases    []junitCase `xml:"testcase"`
}

type junitCase struct {
	Name      string         `xml:"name,attr"`
	Classname string         `xml:"classname,attr"`
	Time      string         `xml:"time,attr"`
	Errors    []junitProblem `xml:"error"`
	Failures  []junitProblem `xml:"failure"`
	SystemOut string         `xml:"system-out,omitempty"`
}

type junitProblem struct {
	Message string `xml:"message,attr"`
	Type    string `xml:"type,attr"`
	Text    string `xml:",chardata"`
}

func (r *Report) writeJUnit(w io.Writer) error {
	suite := junitSuite{Name: "stateguard", Time: "0"}
	for _, p := range r.Errors {
		suite.Cases = append(suite.Cases, junitCase{
			Name: "read " + p.Source, Classname: File(p.Source), Time: "0",
			Errors: []junitProblem{{Message: p.Message, Type: "unreadable input", Text: p.Source + ": " + p.Message}},
		})
	}
	// Results by the object they are about.
	results := map[Subject][]Entry{}
	for _, e := range r.Results {
		s := Subject{Kind: e.Kind, Namespace: e.Namespace, Name: e.Name, Source: e.Source, Line: e.Line}
		results[s] = append(results[s], e)
	}
	for _, s := range r.Judged {
		c := junitCase{Name: objectName(s.Kind, s.Namespace, s.Name), Classname: File(s.Source), Time: "0"}
		var others []string
		for _, e := range results[s] {
			text := fmt.Sprintf("%s:%d: %s (%s): %s: %s", File(e.Source), e.Line, e.Rule, e.Action, e.Field, e.Message)
			if r.Fails(e) {
				c.Failures = append(c.Failures, junitProblem{Message: e.Rule + ": " + e.Field, Type: string(e.Action), Text: text})
			} else {
				others = append(others, text)
			}
		}
		c.SystemOut = strings.Join(others, "\n")
		suite.Cases = append(suite.Cases, c)
	}
	for _, c := range suite.Cases {
		suite.Tests++
		if len(c.Failures) > 0 {
			suite.Failures++
		}
		if len(c.Errors) > 0 {
			suite.Errors++
		}
	}
	doc := junitSuites{Name: "stateguard", Tests: suite.Tests, Failures: suite.Failures, Errors: suite.Errors, Suites: []junitSuite{suite}}
	if _, err := io.WriteString(w, xml.Header); err != nil {
		return err
	}
	enc := xml.NewEncoder(w)
	enc.Indent("", "  ")
	if err := enc.Encode(doc); err != nil {
		return err
	}
	_, err := io.WriteString(w, "\n")
	return err
}
