// Login with login + password (ADM-7); the server's refusal is shown in the user's language.
import { Alert, Button, Center, Group, Paper, PasswordInput, Stack, TextInput, Title } from "@mantine/core";
import { useState } from "react";
import { useTranslation } from "react-i18next";
import { ApiError } from "../api/client";
import { useAuth } from "../auth";
import { LanguageSwitch } from "../layout/LanguageSwitch";

function loginError(err: unknown, t: (key: string, vars?: Record<string, unknown>) => string): string {
  if (err instanceof ApiError && (err.code === "bad_credentials" || err.code === "too_many_attempts")) return t(`login.${err.code}`);
  return t("login.failed", { message: err instanceof Error ? err.message : String(err) });
}

export function LoginPage() {
  const { t } = useTranslation();
  const { login } = useAuth();
  const [form, setForm] = useState({ login: "", password: "" });
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async () => {
    setBusy(true);
    setError(null);
    try {
      await login(form.login, form.password);
    } catch (err) {
      setError(loginError(err, t));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Center mih="100vh" p="md">
      <Paper withBorder shadow="sm" p="xl" w={380} maw="100%">
        <form
          onSubmit={(e) => {
            e.preventDefault();
            void submit();
          }}
        >
          <Stack>
            <Group justify="space-between">
              <Title order={3}>{t("login.title")}</Title>
              <LanguageSwitch />
            </Group>
            {error && (
              <Alert color="red" role="alert">
                {error}
              </Alert>
            )}
            <TextInput
              label={t("login.login")}
              autoComplete="username"
              required
              autoFocus
              value={form.login}
              onChange={(e) => setForm({ ...form, login: e.currentTarget.value })}
            />
            <PasswordInput
              label={t("login.password")}
              autoComplete="current-password"
              required
              value={form.password}
              onChange={(e) => setForm({ ...form, password: e.currentTarget.value })}
            />
            <Button type="submit" loading={busy} disabled={!form.login || !form.password}>
              {t("login.submit")}
            </Button>
          </Stack>
        </form>
      </Paper>
    </Center>
  );
}
