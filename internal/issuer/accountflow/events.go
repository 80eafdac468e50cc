package accountflow

import "context"

// eventLines lists the recent sign-in events of a's user's account.
func (f *Flow) eventLines(ctx context.Context, a *account) ([]eventLine, error) {
	return nil, nil
}
