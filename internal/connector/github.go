package connector

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"

	"golang.org/x/oauth2"
)

// GitHub's own URLs, for github.com (GitHubSettings' URLs empty).
const (
	GitHubBaseURL = "https://github.com"
	GitHubAPIURL  = "https://api.github.com"
)

// GitHub's API paging: the largest page it serves, and how many pages of
// orgs or teams are read at most.
const (
	githubPerPage  = 100
	githubMaxPages = 10
)

// githubConnector signs in with a GitHub OAuth app. GitHub has no ID
// token: who signed in is what its API says to the access token, which is
// used for these few requests and then dropped.
type githubConnector struct {
	s       *GitHubSettings
	env     Env
	apiURL  string
	oauth   *oauth2.Config
	needOrg bool // the org or team rules need read:org
}

func newGitHub(s *GitHubSettings, secret string, env Env) (*githubConnector, error) {
	if secret == "" {
		return nil, errors.New("connector: the GitHub client secret is empty")
	}
	if env.Callback == "" {
		return nil, errors.New("connector: the callback URL is missing")
	}
	base, api := s.BaseURL, s.APIURL
	if base == "" {
		base = GitHubBaseURL
	}
	if api == "" {
		api = GitHubAPIURL
	}
	needOrg := s.Org != "" || len(s.Teams) > 0
	scopes := []string{"read:user", "user:email"}
	if needOrg {
		scopes = append(scopes, "read:org")
	}
	c := &githubConnector{
		s:       s,
		env:     env,
		apiURL:  api,
		needOrg: needOrg,
		oauth: &oauth2.Config{
			ClientID:     s.ClientID,
			ClientSecret: secret,
			Endpoint:     oauth2.Endpoint{AuthURL: base + "/login/oauth/authorize", TokenURL: base + "/login/oauth/access_token", AuthStyle: oauth2.AuthStyleInParams},
			RedirectURL:  env.Callback,
			Scopes:       scopes,
		},
	}
	// GitHub answers the token request form-encoded unless asked for JSON.
	client := *env.HTTPClient
	client.Transport = acceptJSON{next: client.Transport}
	c.env.HTTPClient = &client
	return c, nil
}

// acceptJSON asks for JSON where the request names no Accept.
type acceptJSON struct{ next http.RoundTripper }

func (a acceptJSON) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Header.Get("Accept") == "" {
		r = r.Clone(r.Context())
		r.Header.Set("Accept", "application/json")
	}
	next := a.next
	if next == nil {
		next = http.DefaultTransport
	}
	return next.RoundTrip(r)
}

// AuthCodeURL sends the browser to GitHub with state and PKCE S256; nonce
// is not used (GitHub has no ID token).
func (c *githubConnector) AuthCodeURL(_ context.Context, state, nonce, verifier string) (string, error) {
	if err := checkStart(state, nonce, verifier, false); err != nil {
		return "", err
	}
	return c.oauth.AuthCodeURL(state, oauth2.S256ChallengeOption(verifier), oauth2.SetAuthURLParam("allow_signup", "false")), nil
}

// Exchange redeems the code and asks GitHub who signed in, then applies
// the org, team and domain rules. GitHub does not send RFC 9207's iss: a
// response of another connector is kept out by the state, which is bound
// to this connector.
func (c *githubConnector) Exchange(ctx context.Context, q url.Values, _, verifier string) (Identity, error) {
	if err := checkStart("-", "", verifier, false); err != nil {
		return Identity{}, err
	}
	if err := callbackError(q); err != nil {
		return Identity{}, err
	}
	code, err := callbackValue(q, "code")
	if err != nil {
		return Identity{}, err
	}
	if code == "" {
		return Identity{}, Refused(ReasonMalformed, "GitHub's answer has no authorization code")
	}
	tok, err := c.oauth.Exchange(context.WithValue(ctx, oauth2.HTTPClient, c.env.HTTPClient), code, oauth2.VerifierOption(verifier))
	if err != nil {
		return Identity{}, tokenEndpointError(err)
	}
	api := &githubAPI{c: c, ctx: ctx, token: tok.AccessToken}
	var user struct {
		ID    int64  `json:"id"`
		Login string `json:"login"`
		Name  string `json:"name"`
	}
	if err := api.get("/user", &user); err != nil {
		return Identity{}, err
	}
	if user.ID <= 0 || user.Login == "" || len(user.Login) > maxClaimLen {
		return Identity{}, Refused(ReasonMalformed, "GitHub's /user answer has no usable id or login")
	}
	email, err := c.email(api)
	if err != nil {
		return Identity{}, err
	}
	groups, err := c.groups(api)
	if err != nil {
		return Identity{}, err
	}
	return Identity{
		Subject:  strconv.FormatInt(user.ID, 10),
		Username: user.Login,
		Name:     bounded(user.Name),
		Email:    email,
		Groups:   groups,
	}, nil
}

type githubEmail struct {
	Email    string `json:"email"`
	Primary  bool   `json:"primary"`
	Verified bool   `json:"verified"`
}

// email returns the primary verified email; with allowed domains, a
// verified email of one of them (the primary first), else a refusal.
func (c *githubConnector) email(api *githubAPI) (string, error) {
	var emails []githubEmail
	if err := api.get("/user/emails?per_page="+strconv.Itoa(githubPerPage), &emails); err != nil {
		return "", err
	}
	// The primary address first.
	slices.SortStableFunc(emails, func(a, b githubEmail) int {
		switch {
		case a.Primary == b.Primary:
			return 0
		case a.Primary:
			return -1
		}
		return 1
	})
	if len(c.s.AllowedDomains) == 0 {
		if len(emails) > 0 && emails[0].Primary && emails[0].Verified {
			return checkEmail(emails[0].Email, true, nil)
		}
		return "", nil
	}
	unverified := false
	for _, e := range emails {
		got, err := checkEmail(e.Email, e.Verified, c.s.AllowedDomains)
		if err == nil {
			return got, nil
		}
		unverified = unverified || ReasonOf(err) == ReasonUnverifiedEmail && e.Email != "" && inDomains(e.Email, c.s.AllowedDomains)
	}
	if unverified || len(emails) == 0 {
		return "", Refused(ReasonUnverifiedEmail, "GitHub shows no verified email address of a domain this connector admits (verify it at GitHub)")
	}
	return "", Refused(ReasonDomainNotAllowed, "none of the GitHub account's email addresses is of a domain this connector admits")
}

func inDomains(email string, domains []string) bool {
	return slices.Contains(domains, strings.ToLower(email[strings.LastIndex(email, "@")+1:]))
}

// groups applies the org and team rules and returns the teams, as
// "org/team-slug" (those of the org when one is set); nil when no rule
// asked for read:org.
func (c *githubConnector) groups(api *githubAPI) ([]string, error) {
	if !c.needOrg {
		return nil, nil
	}
	if c.s.Org != "" {
		var orgs []string
		err := api.pages("/user/orgs", func(raw json.RawMessage) error {
			var o struct {
				Login string `json:"login"`
			}
			if err := json.Unmarshal(raw, &o); err != nil {
				return err
			}
			orgs = append(orgs, o.Login)
			return nil
		})
		if err != nil {
			return nil, err
		}
		if !slices.ContainsFunc(orgs, func(o string) bool { return strings.EqualFold(o, c.s.Org) }) {
			return nil, Refused(ReasonNotInOrg, "you are not a member of the GitHub organisation this connector admits (or have not granted the app access to it)")
		}
	}
	var teams []string
	err := api.pages("/user/teams", func(raw json.RawMessage) error {
		var t struct {
			Slug string `json:"slug"`
			Org  struct {
				Login string `json:"login"`
			} `json:"organization"`
		}
		if err := json.Unmarshal(raw, &t); err != nil {
			return err
		}
		if t.Slug == "" || t.Org.Login == "" || len(t.Slug)+len(t.Org.Login) > maxGroupLen {
			return errors.New("a team without a slug or organisation")
		}
		if c.s.Org == "" || strings.EqualFold(t.Org.Login, c.s.Org) {
			teams = append(teams, strings.ToLower(t.Org.Login)+"/"+t.Slug)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(c.s.Teams) > 0 && !slices.ContainsFunc(c.s.Teams, func(want string) bool {
		return slices.ContainsFunc(teams, func(t string) bool { return strings.EqualFold(t, want) })
	}) {
		return nil, Refused(ReasonNotInTeam, "you are not a member of a GitHub team this connector admits")
	}
	return checkGroups(teams)
}

// githubAPI asks GitHub's API with the sign-in's access token.
type githubAPI struct {
	c     *githubConnector
	ctx   context.Context
	token string
}

func (a *githubAPI) get(path string, v any) error {
	body, err := a.fetch(path)
	if err != nil {
		return err
	}
	if err := json.Unmarshal(body, v); err != nil {
		return Refused(ReasonMalformed, "GitHub's answer does not parse")
	}
	return nil
}

func (a *githubAPI) fetch(path string) ([]byte, error) {
	req, err := http.NewRequestWithContext(a.ctx, http.MethodGet, a.c.apiURL+path, nil)
	if err != nil {
		return nil, fmt.Errorf("connector: GitHub API request: %w", err)
	}
	req.Header.Set("Authorization", "Bearer "+a.token)
	req.Header.Set("Accept", "application/vnd.github+json")
	req.Header.Set("X-GitHub-Api-Version", "2022-11-28")
	req.Header.Set("User-Agent", "nsauth")
	what := "GitHub " + path
	if i := strings.IndexByte(what, '?'); i >= 0 {
		what = what[:i]
	}
	return getJSON(a.c.env.HTTPClient, req, what)
}

// pages reads up to githubMaxPages pages of a list, calling each for every
// item.
func (a *githubAPI) pages(path string, each func(json.RawMessage) error) error {
	for page := 1; page <= githubMaxPages; page++ {
		body, err := a.fetch(fmt.Sprintf("%s?per_page=%d&page=%d", path, githubPerPage, page))
		if err != nil {
			return err
		}
		var items []json.RawMessage
		if err := json.Unmarshal(body, &items); err != nil {
			return Refused(ReasonMalformed, "GitHub's answer does not parse")
		}
		for _, it := range items {
			if err := each(it); err != nil {
				return Refused(ReasonMalformed, "GitHub's answer does not parse")
			}
		}
		if len(items) < githubPerPage {
			return nil
		}
	}
	return nil
}
