package sigv4

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// Provider returns AWS credentials. The iot package calls it before every
// (re)connect, so rotated temporary credentials are picked up.
type Provider interface {
	Retrieve(ctx context.Context) (Credentials, error)
}

// Static is a Provider that always returns the same credentials.
type Static Credentials

// Retrieve returns the static credentials.
func (s Static) Retrieve(context.Context) (Credentials, error) {
	c := Credentials(s)
	if !c.Valid() {
		return Credentials{}, fmt.Errorf("%w: static credentials need both an access key id and a secret access key", ErrNoCredentials)
	}
	if c.Source == "" {
		c.Source = "static"
	}
	return c, nil
}

// Env reads AWS_ACCESS_KEY_ID (or AWS_ACCESS_KEY), AWS_SECRET_ACCESS_KEY (or
// AWS_SECRET_KEY) and AWS_SESSION_TOKEN.
type Env struct {
	// Getenv looks variables up; nil means os.Getenv.
	Getenv func(string) string
}

// Retrieve reads the environment.
func (e Env) Retrieve(context.Context) (Credentials, error) {
	get := e.Getenv
	if get == nil {
		get = os.Getenv
	}
	c := Credentials{
		AccessKeyID:     first(get("AWS_ACCESS_KEY_ID"), get("AWS_ACCESS_KEY")),
		SecretAccessKey: first(get("AWS_SECRET_ACCESS_KEY"), get("AWS_SECRET_KEY")),
		SessionToken:    get("AWS_SESSION_TOKEN"),
		Source:          "environment",
	}
	if !c.Valid() {
		return Credentials{}, fmt.Errorf("%w: AWS_ACCESS_KEY_ID and AWS_SECRET_ACCESS_KEY are not both set", ErrNoCredentials)
	}
	return c, nil
}

// SharedFile reads a profile from the shared credentials file.
type SharedFile struct {
	// Path of the file; "" means $AWS_SHARED_CREDENTIALS_FILE or
	// ~/.aws/credentials.
	Path string
	// Profile to read; "" means $AWS_PROFILE or "default".
	Profile string
	// Getenv looks variables up; nil means os.Getenv.
	Getenv func(string) string
	// HomeDir returns the home directory; nil means os.UserHomeDir.
	HomeDir func() (string, error)
}

// Retrieve parses the file and returns the profile's keys.
func (s SharedFile) Retrieve(context.Context) (Credentials, error) {
	get := s.Getenv
	if get == nil {
		get = os.Getenv
	}
	path := first(s.Path, get("AWS_SHARED_CREDENTIALS_FILE"))
	if path == "" {
		home := s.HomeDir
		if home == nil {
			home = os.UserHomeDir
		}
		h, err := home()
		if err != nil {
			return Credentials{}, fmt.Errorf("%w: cannot find the home directory for ~/.aws/credentials: %v", ErrNoCredentials, err)
		}
		path = filepath.Join(h, ".aws", "credentials")
	}
	profile := first(s.Profile, get("AWS_PROFILE"), "default")
	f, err := os.Open(path)
	if err != nil {
		if errors.Is(err, fs.ErrNotExist) {
			return Credentials{}, fmt.Errorf("%w: shared credentials file %s does not exist", ErrNoCredentials, path)
		}
		return Credentials{}, fmt.Errorf("sigv4: reading shared credentials file: %w", err)
	}
	defer f.Close()
	values, found, err := parseProfile(f, profile)
	if err != nil {
		return Credentials{}, fmt.Errorf("sigv4: %s: %w", path, err)
	}
	if !found {
		return Credentials{}, fmt.Errorf("%w: profile [%s] not found in %s (set AWS_PROFILE to pick another)", ErrNoCredentials, profile, path)
	}
	c := Credentials{
		AccessKeyID:     values["aws_access_key_id"],
		SecretAccessKey: values["aws_secret_access_key"],
		SessionToken:    values["aws_session_token"],
		Source:          path + " [" + profile + "]",
	}
	if !c.Valid() {
		return Credentials{}, fmt.Errorf("%w: profile [%s] in %s lacks aws_access_key_id or aws_secret_access_key", ErrNoCredentials, profile, path)
	}
	return c, nil
}

// parseProfile reads an INI file and returns the key/values of section
// profile.
func parseProfile(f *os.File, profile string) (map[string]string, bool, error) {
	sc := bufio.NewScanner(f)
	values := map[string]string{}
	in, found := false, false
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' || line[0] == ';' {
			continue
		}
		if line[0] == '[' && strings.HasSuffix(line, "]") {
			name := strings.TrimSpace(line[1 : len(line)-1])
			in = name == profile
			found = found || in
			continue
		}
		if !in {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok {
			continue
		}
		values[strings.ToLower(strings.TrimSpace(k))] = strings.TrimSpace(v)
	}
	return values, found, sc.Err()
}

// Chain tries providers in order and returns the first credentials found.
type Chain []Provider

// Retrieve returns the first provider's credentials that succeed; when all
// fail the error lists why each failed.
func (c Chain) Retrieve(ctx context.Context) (Credentials, error) {
	var errs []error
	for _, p := range c {
		creds, err := p.Retrieve(ctx)
		if err == nil {
			return creds, nil
		}
		errs = append(errs, err)
	}
	if len(errs) == 0 {
		return Credentials{}, fmt.Errorf("%w: no credential providers configured", ErrNoCredentials)
	}
	return Credentials{}, errors.Join(errs...)
}

// Default is the usual lookup order: environment variables, then the shared
// credentials file. getenv nil means os.Getenv; credentialsFile "" means the
// standard location.
func Default(getenv func(string) string, credentialsFile string) Provider {
	return Chain{Env{Getenv: getenv}, SharedFile{Path: credentialsFile, Getenv: getenv}}
}

// RegionFromEnv returns AWS_REGION, else AWS_DEFAULT_REGION ("" if neither
// is set). getenv nil means os.Getenv.
func RegionFromEnv(getenv func(string) string) string {
	if getenv == nil {
		getenv = os.Getenv
	}
	return first(getenv("AWS_REGION"), getenv("AWS_DEFAULT_REGION"))
}

func first(vs ...string) string {
	for _, v := range vs {
		if v != "" {
			return v
		}
	}
	return ""
}
