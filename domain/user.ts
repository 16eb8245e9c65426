/** Who a user is to the system: customers own subscriptions and bookings; staff steer them. */
export type Role = 'customer' | 'staff';

export const ROLES: readonly Role[] = ['customer', 'staff'];

export const PASSWORD_MIN_LENGTH = 8;
// Bounds the work a single login can ask the password hash to do.
export const PASSWORD_MAX_LENGTH = 256;

/** Emails compare case-insensitively and without surrounding spaces, so both are stored lower-case and trimmed. */
export function normalizeEmail(email: string): string {
  return email.trim().toLowerCase();
}

/** A user as the API shows it: never the password hash. */
export interface UserView {
  id: string;
  email: string;
  name: string;
  role: Role;
  createdAt: string;
}

export function toUserView(user: { id: string; email: string; name: string; role: Role; createdAt: Date }): UserView {
  return {
    id: user.id,
    email: user.email,
    name: user.name,
    role: user.role,
    createdAt: user.createdAt.toISOString(),
  };
}
