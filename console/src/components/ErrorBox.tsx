import { ApiError } from '../api';
import { errorText } from '../format';

/** An error, with the API's code when it is an API error; nothing for no error. */
export function ErrorBox({ error }: { error: unknown }) {
  if (!error) return null;
  const forbidden = error instanceof ApiError && error.status === 403;
  return (
    <div className="error" role="alert">
      {errorText(error)}
      {forbidden && <div className="muted">This needs a credential with more rights.</div>}
    </div>
  );
}
