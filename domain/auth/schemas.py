"""Request and response shapes for authentication."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, EmailStr, Field, StrictBool

from domain.users.schemas import FullName, Password, Username

OtpCode = Annotated[str, Field(pattern=r"^[0-9]{6}$", description="six digits")]


class RegisterRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: EmailStr
    username: Username
    full_name: FullName
    password: Password


class LoginRequest(BaseModel):
    """`username` may be the username or the email."""

    model_config = ConfigDict(extra="forbid")

    username: Annotated[str, Field(min_length=1, max_length=254)]
    password: Annotated[str, Field(min_length=1, max_length=128)]


class TokenPair(BaseModel):
    access_token: str
    refresh_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="seconds until the access token expires")


class OtpChallenge(BaseModel):
    """The password was right and the account has two-factor sign-in: finish with POST /auth/login/otp."""

    otp_required: Literal[True] = True
    otp_token: str
    methods: list[Literal["totp", "email"]]
    expires_in: int


class OtpLoginRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    otp_token: str = Field(max_length=2000)
    code: OtpCode


class GenerateOtpRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    otp_token: str = Field(max_length=2000, description="from the login answer that said otp_required")


class OtpSent(BaseModel):
    sent: bool = True
    expires_in: int


class RefreshRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    refresh_token: str = Field(max_length=2000)


class LogoutRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    everywhere: StrictBool = Field(default=False, description="also end every other session of this user")


class OtpSetup(BaseModel):
    secret: str
    provisioning_uri: str
    qr_svg: str = Field(description="the provisioning URI as an SVG QR code")


CurrentPassword = Annotated[str, Field(min_length=1, max_length=128, description="the account's current password")]


class PasswordConfirmation(BaseModel):
    """Changing how one signs in needs the password, not just a token: a stolen access token alone must not
    enrol an attacker's authenticator or switch the second factor off."""

    model_config = ConfigDict(extra="forbid")

    current_password: CurrentPassword


class OtpVerifyRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: OtpCode
    current_password: CurrentPassword


class OtpStatus(BaseModel):
    otp_enabled: bool
    methods: list[Literal["totp", "email"]] = Field(description="what a sign-in accepts as its second factor")


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Annotated[str, Field(max_length=128)]
    new_password: Password
