// Package authflow runs a browser login: one flow value handed to one
// dispatcher that decides the next step; steps never call one another.
//
// The login page (the password, the first factor), a passwordless
// passkey, or an enrolment link's page begins a flow. After its first
// factor a login is one value, loginFlow, and one dispatcher, Flow.next,
// decides where it goes: the second factor, enrolment, the offer of a
// passkey, or its end (the code for the client, or a device's approval
// page). Each step is a type of its own (passwordStep, secondFactorStep,
// enrolStep, passkeyStep, passkeyOffer, enrolLinkStep) over the
// dependencies every step shares (deps), none holding another: a step's
// handler reads its form (readStepForm), does its one thing (checks a
// code, stores a passkey), updates the flow and hands it to next.
//
// Every step after the first factor is bound to the browser that proved
// it. Its state is a store.PendingMFA stored under the digest of a random
// token, which the page's forms carry, joined to the browser's CSRF token,
// which only that browser's cookie holds (HttpOnly, SameSite=Strict). A
// second browser holding the auth request id, even the token, finds no
// state: its post is refused and changes nothing, the first browser's
// login goes on.
//
// The rule for lasting factors. A factor that can later stand in for the
// password (a passkey, which also logs in alone; an authenticator app;
// recovery codes) is never added on the strength of the password alone,
// which an attacker may have. It is added in the browser only
//   - after a login that proved a second factor the user already has (one
//     more passkey, offered after password and code), or
//   - in a flow that began with an enrolment link an administrator made
//     for the user (nsauth users enrol-link NAME: single use, short-lived,
//     bound to the user), together with the user's password.
//
// So, without a second factor, a user logs in with the password alone
// under NSAUTH_MFA=optional and is offered nothing; under required they
// cannot finish a login until they enrol through a link (or an
// administrator enrols them with nsauth users totp enroll).
package authflow
