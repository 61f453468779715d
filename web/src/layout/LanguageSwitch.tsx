import { SegmentedControl } from "@mantine/core";
import { useTranslation } from "react-i18next";

/** Russian (default) / English (issue 6 §7). */
export function LanguageSwitch() {
  const { i18n, t } = useTranslation();
  return (
    <SegmentedControl
      size="xs"
      aria-label={t("common.language")}
      value={i18n.language === "en" ? "en" : "ru"}
      onChange={(lng) => void i18n.changeLanguage(lng)}
      data={[
        { value: "ru", label: "RU" },
        { value: "en", label: "EN" },
      ]}
    />
  );
}
